"""``remedysweep doctor``: diagnose a user's own Keras classifier and find,
within a budget of runs, the best remedy that verifiably fixes it.

An application of the sweep engine, not a second one: the model and data go
through the same sources and checks as a sweep file's, every run is trained,
recorded and classified by the same trainers and recorder (packed where the
runs allow), the fixes are the registry's remedies (plugins included, through
their ``suggest`` and ``explore`` hooks), the runs live in an Optuna study in
the output folder, and the report is rendered by the same report code.

The steps are in :mod:`.diagnosis`, the search in :mod:`.search`, what counts as
a fix in :mod:`.evidence`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from remedysweep.errors import SweepError
from remedysweep.files import atomic_write, check_folder, folder_kind, mark_folder

from remedysweep.engine.config import DataSpec, ModelSpec

from .diagnosis import MAX_BUDGET, MAX_EPOCHS, MAX_SEEDS, Doctor, doctor_sweep
from .evidence import summarize

__all__ = ["Doctor", "diagnose", "diagnose_sources", "doctor_sweep", "summarize", "write_doctor_report"]


def _source_specs(model: str, data: str) -> tuple[ModelSpec, DataSpec]:
    from remedysweep.engine.config import CALLABLE_PATTERN, _callable_spec

    if model.endswith((".keras", ".h5")):
        if not Path(model).is_file():
            raise SweepError("--model", None, f"{model}: file not found")
        model_spec = ModelSpec(path=str(Path(model).resolve()))
    elif CALLABLE_PATTERN.match(model):
        model_spec = ModelSpec(builder=_callable_spec("--model", None, model, Path.cwd()))  # type: ignore[arg-type]
    else:
        raise SweepError("--model", None, f"{model!r}: expected FILE.py:FUNCTION, package.module:FUNCTION or a .keras file")
    path = Path(data)
    if data.endswith((".npz", ".csv")) or path.is_dir():
        if not path.exists():
            raise SweepError("--data", None, f"{data}: not found")
        data_spec = DataSpec(path=str(path.resolve()))
    elif CALLABLE_PATTERN.match(data):
        data_spec = DataSpec(loader=_callable_spec("--data", None, data, Path.cwd()))  # type: ignore[arg-type]
    else:
        raise SweepError("--data", None, f"{data!r}: expected FILE.py:FUNCTION, package.module:FUNCTION, an .npz, a .csv or an image folder")
    return model_spec, data_spec


def check_sizes(epochs: int, seeds: int, budget: int) -> None:
    """Refuse sizes that cannot be meant (before anything runs)."""
    for flag, value, low, high in (("--epochs", epochs, 1, MAX_EPOCHS), ("--seeds", seeds, 1, MAX_SEEDS), ("--budget", budget, 0, MAX_BUDGET)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SweepError(flag, None, f"must be an integer from {low} to {high}, got {value!r}")


def diagnose_sources(model: str, data: str, *, epochs: int = 10, seeds: int = 3, budget: int = 48, plugins: tuple[str, ...] = (),
                     echo: Callable[[str], None] = lambda s: None, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Diagnose a model given as ``FILE.py:FUNCTION`` (or ``package.module:FUNCTION``,
    or a ``.keras`` file) on data given as ``FILE.py:FUNCTION`` (or an ``.npz``,
    a ``.csv``, an image folder). Raises :class:`~remedysweep.errors.SweepError`
    for bad input; a fault inside a run is part of the verdict."""
    check_sizes(epochs, seeds, budget)
    model_spec, data_spec = _source_specs(model, data)
    return diagnose(model_spec, data_spec, epochs=epochs, seeds=seeds, budget=budget, plugins=plugins, echo=echo, out=out, **options)


def diagnose(model: ModelSpec, data: DataSpec, *, epochs: int = 10, seeds: int = 3, budget: int = 48, plugins: tuple[str, ...] = (),
             echo: Callable[[str], None] = lambda s: None, out: str | Path | None = None, strategy: str = "targeted",
             pack: bool = True) -> dict[str, Any]:
    """Run every step and return the verdict (a JSON-friendly dict); with
    ``out``, the search's runs are stored there as a run folder.
    ``strategy="random"`` spends the budget on Optuna's random sampler over the
    same remedies instead of the targeted search (for comparisons);
    ``pack=False`` trains every run alone."""
    check_sizes(epochs, seeds, budget)
    if out is not None:
        check_doctor_folder(Path(out))
    doctor = Doctor(model, data, epochs=epochs, seeds=seeds, budget=budget, plugins=plugins, echo=echo,
                    out=Path(out) if out is not None else None, strategy=strategy, pack=pack)
    verdict = doctor.run()
    verdict["_doctor"] = doctor
    return verdict


FOLDER_KIND = "doctor"


def _legacy_doctor_folder(folder: Path) -> bool:
    """A doctor folder of remedysweep 0.2, written before the marker."""
    try:
        data = json.loads((folder / "doctor.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and {"conclusion", "baseline", "sanity_check"} <= set(data)


def check_doctor_folder(out: Path) -> None:
    """``--out`` must be new, empty, or a folder doctor wrote (never a sweep's
    run folder, never the user's own files); checked before anything runs."""
    check_folder(out, FOLDER_KIND, legacy=_legacy_doctor_folder)


def write_doctor_report(verdict: dict[str, Any], out: Path) -> Path:
    """doctor.json, the search's run folder (trials.csv, curves.csv) and doctor.html."""
    from remedysweep.engine.result import clean_json
    from remedysweep.reports.doctor import render_doctor

    doctor = verdict.pop("_doctor", None)
    check_doctor_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    if folder_kind(out) is None:
        mark_folder(out, FOLDER_KIND)
    if doctor is not None and getattr(doctor, "queue", None) is not None and doctor.out == out:
        from remedysweep.sweep import SWEEP_FILE, export

        export(doctor.queue, out)
        atomic_write(out / SWEEP_FILE, json.dumps({"fingerprint": doctor.study_sweep.fingerprint(), "sweep": doctor.study_sweep.to_dict()}, indent=2))
    atomic_write(out / "doctor.json", json.dumps(clean_json(verdict), indent=2, default=str))
    path = out / "doctor.html"
    atomic_write(path, render_doctor(verdict, out))
    return path
