"""``remedysweep doctor``: diagnose your own Keras model and find a verified fix."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NAME = "doctor"


def add_parser(sub: Any) -> None:
    from remedysweep.engine.config import DOCTOR_BUDGET_RUNS, DOCTOR_EPOCHS, DOCTOR_SEEDS

    d = sub.add_parser(NAME, help="diagnose your own Keras model", description="Reproduce your model's problem over seeds and find the least invasive fix that works.")
    d.add_argument("--from", dest="from_", metavar="FOLDER", help="a run folder remedysweep.keras.Watch wrote: start from the model and data sample it holds (the code saved in it runs, as importing your script would: use it on folders you wrote)")
    d.add_argument("--model", help="FILE.py:FUNCTION or package.module:FUNCTION returning a compiled keras.Model, or a saved .keras file")
    d.add_argument("--data", help="FILE.py:FUNCTION returning ((x_train, y_train), (x_val, y_val)); an .npz with those four arrays; a .csv with a label column; or a folder of class subfolders of images")
    d.add_argument("--epochs", type=int, default=None, help=f"epochs per run (default {DOCTOR_EPOCHS}; with --from, the epochs the watched run trained)")
    d.add_argument("--seeds", type=int, default=DOCTOR_SEEDS, help="seeds per candidate (default %(default)s)")
    d.add_argument("--budget", type=int, default=None, metavar="EPOCHS",
                   help=f"most epochs the search trains, confirmation aside (default: {DOCTOR_BUDGET_RUNS} runs' worth, "
                        f"{DOCTOR_BUDGET_RUNS} x --epochs); changes are halved as they train, so it pays for more changes than that")
    d.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="also try remedies from a local file")
    d.add_argument("--out", default="doctor", help="folder for doctor.html and doctor.json (default: doctor)")
    d.add_argument("--json", action="store_true", help="print the machine-readable verdict on stdout")


def main(args: argparse.Namespace) -> int:
    from remedysweep.cli import safe
    from remedysweep.doctor import diagnose_sources, write_doctor_report

    echo = (lambda s: print(safe(s), file=sys.stderr)) if args.json else (lambda s: print(safe(s)))
    verdict = diagnose_sources(args.model, args.data, epochs=args.epochs, seeds=args.seeds, budget=args.budget,
                               plugins=tuple(args.plugin), echo=echo, out=args.out, from_=args.from_)
    path = write_doctor_report(verdict, Path(args.out))
    if args.json:
        keys = ("baseline_outcome", "symptoms", "recommendation", "conclusion", "sanity_check", "baseline", "tried", "facts", "best_partial")
        print(json.dumps({k: verdict.get(k) for k in keys}, indent=2, default=str))
    else:
        print(f"report: {path}")
    return 0
