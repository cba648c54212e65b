"""The run folder: its file names and the CSV export, one owner for both.

A sweep, doctor's search and ``Watch`` all write the same ``trials.csv``,
``curves.csv`` and ``early_probes.csv`` through :func:`write_frames`; the report
reads what they wrote by these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remedysweep.files import LOCK_FILE, atomic_write  # noqa: F401  (LOCK_FILE: one owner, named here with the rest)

from . import result as schema
from .config import config_id

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.json"
JOURNAL_FILE = "study.journal"
TRIALS_CSV = "trials.csv"
CURVES_CSV = "curves.csv"
PROBES_CSV = "early_probes.csv"
REPORT_HTML = "report.html"
FINDINGS_JSON = "findings.json"
JOURNAL_FILES = (JOURNAL_FILE, JOURNAL_FILE + ".lock", JOURNAL_FILE + ".queue.lock")
RUN_FOLDER_FILES = (*JOURNAL_FILES, TRIALS_CSV, CURVES_CSV, PROBES_CSV, REPORT_HTML, FINDINGS_JSON, RUN_FILE, SWEEP_FILE)

#: A text cell starting with one of these is a formula to a spreadsheet.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formulas(frame: Any) -> Any:
    """Text cells that start like a formula get a leading apostrophe (CSV injection)."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v)
    return out


def results_frames(queue: Any) -> tuple[Any, Any, Any]:
    """trials, curves and early-probe DataFrames of a run queue's counted runs."""
    import pandas as pd

    trials, curves, probes = [], [], []
    facts: dict[str, None] = {}
    for run in queue.results():
        cid = config_id(run.knobs)
        trials.append(schema.trial_row(run.number, cid, run.knobs, run.seed, run.result))
        facts.update(dict.fromkeys(run.result.facts))
        curves += list(schema.curve_rows(run.number, cid, run.seed, run.result))
        probes += list(schema.probe_rows(run.number, cid, run.seed, run.result))
    columns = schema.trial_columns(queue.sweep.knob_names, [f for f in facts if not f.startswith("input_") and f != "relu_family"])
    trials_df = pd.DataFrame(trials).reindex(columns=columns)
    return trials_df, pd.DataFrame(curves), pd.DataFrame(probes, columns=list(schema.PROBE_COLUMN_NAMES))


def write_frames(out_dir: Path, trials: Any, curves: Any, probes: Any) -> None:
    """The three CSVs of a run folder, each written whole or not at all."""
    atomic_write(out_dir / TRIALS_CSV, neutralize_formulas(trials).to_csv(index=False))
    atomic_write(out_dir / CURVES_CSV, curves.to_csv(index=False))
    atomic_write(out_dir / PROBES_CSV, probes.to_csv(index=False))


def export(queue: Any, out_dir: Path) -> None:
    """A run queue's results as the run folder's CSVs."""
    write_frames(out_dir, *results_frames(queue))
