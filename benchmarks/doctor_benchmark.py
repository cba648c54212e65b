"""The doctor benchmark: mutants of five healthy classifiers (benchmarks/doctor/cases.py),
kept where the fault shows in plain Keras, diagnosed by ``remedysweep doctor``
and, at the same run budget, by Optuna's random sampler over the same remedies.

    python benchmarks/doctor_benchmark.py                                   # a sample: about 15-20 min on 2 cores
    python benchmarks/doctor_benchmark.py --all --epochs 15 --out runs/doctor-bench-all   # every case (hours)
    python benchmarks/doctor_benchmark.py --subjects wine --operators l2_3,bottleneck --arms targeted
    PYTHONPATH=<0.3's package> python benchmarks/doctor_benchmark.py --arms targeted --out runs/doctor-bench-0.3
    python benchmarks/doctor_benchmark.py --against runs/doctor-bench-0.3/benchmark.json   # epochs and seconds against 0.3

By default it samples one mutant of each of the five subjects (drawn with a
fixed seed among the operators whose fault shows in plain Keras), the healthy
wine and token models, and wine with shuffled labels, at 10 epochs. Three arms:
doctor (``targeted``), Optuna's random sampler at the same budget (``random``),
and doctor at a third of the budget (``third``).

A mutant is kept when its median final validation accuracy over the seeds, in
plain Keras, is more than 0.05 below the healthy model's. A case counts as
repaired when doctor's verified fix reaches a median final accuracy within 0.05
of the healthy model's. A false fix is any fix claimed on a healthy model or on
no-signal data (labels shuffled against the inputs). Prints the table and
writes ``benchmark.json`` (resumable: finished cases are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE / "doctor" / "cases.py"
sys.path.insert(0, str(HERE / "doctor"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def plain_keras(subject: str, operator: str, epochs: int, seeds: int) -> list[float]:
    """Final validation accuracy of each seed, trained by plain ``fit``."""
    import keras
    import numpy as np

    import cases

    out = []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        model = cases.build(subject, operator)
        (x_tr, y_tr), (x_va, y_va) = cases.load(subject, operator)
        try:
            model.fit(x_tr, y_tr, epochs=epochs, batch_size=32, verbose=0)
            p = np.asarray(model.predict(x_va, verbose=0))
            pred = (p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(-1)
            acc = float((pred == y_va).mean()) if np.all(np.isfinite(p)) else float((np.nan_to_num(pred) == y_va).mean())
        except Exception:
            acc = float("nan")
        out.append(acc)
        keras.backend.clear_session()
    return out


def run_doctor(subject: str, operator: str, arm: str, epochs: int, seeds: int, budget: int) -> dict:
    import keras

    from remedysweep.doctor import diagnose_sources

    t0 = time.perf_counter()
    counted = _count_epochs()
    try:
        v = diagnose_sources(f"{CASES}:model__{subject}__{operator}", f"{CASES}:data__{subject}__{operator}", epochs=epochs,
                             seeds=seeds, budget=budget, strategy=arm)
        error = None
    except Exception as exc:  # a crash is a result too
        v, error = {}, f"{type(exc).__name__}: {exc}"
    finally:
        counted.close()
    seconds = time.perf_counter() - t0
    keras.backend.clear_session()
    rec = v.get("recommendation")
    return {
        "seconds": round(seconds, 1),
        "error": error,
        "conclusion": v.get("conclusion", error),
        "fix": rec["changes"] if rec else None,
        "fix_median": rec["evidence"]["median_final_accuracy"] if rec else None,
        "baseline_median": (v.get("baseline") or {}).get("median_final_accuracy"),
        "no_signal": bool(v.get("no_signal")),
        "symptoms": v.get("symptom_names", []),
        "spent": (v.get("search") or {}).get("spent", 0),
        "epochs_trained": (v.get("trained") or {}).get("epochs", counted.epochs),
        "version": remedysweep_version(),
    }


def default_budget(epochs: int) -> int:
    """Doctor's own default budget: in epochs (0.3 counted it in runs: 48)."""
    try:
        from remedysweep.doctor.diagnosis import default_budget as of
    except ImportError:
        return 48
    return of(epochs)


def remedysweep_version() -> str:
    """The version, with the commit when the package runs from a git checkout
    (so that two runs of one version number stay apart)."""
    import subprocess

    import remedysweep
    from remedysweep.version import __version__

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(remedysweep.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+g{sha}" if sha else __version__


class _count_epochs:
    """Epochs trained by a doctor that does not report them itself (0.3): the
    epochs of every run ``Doctor.evaluate`` returns, and the sanity check's steps
    on easy data (batch 32) in epochs of the case's data, counted while one case runs (so that 0.3 can be measured on these cases with this
    script: ``PYTHONPATH=<0.3's package> python benchmarks/doctor_benchmark.py``)."""

    def __init__(self) -> None:
        from remedysweep.doctor.diagnosis import Doctor

        self.epochs, self._cls = 0, Doctor
        self._saved = {name: getattr(Doctor, name) for name in ("evaluate", "sanity_check")}
        counter = self

        def evaluate(doctor, *a, **kw):
            found = counter._saved["evaluate"](doctor, *a, **kw)
            counter.epochs += sum(int(r.epochs_run or 0) for c in found for r in c.results)
            return found

        def sanity_check(doctor, sweep, data, *a, **kw):  # its steps on easy data, counted in epochs of the case's data
            from remedysweep.engine import data as data_module

            sizes = []
            easy_version = data_module.easy_version

            def recorded(*args, **kwargs):
                easy = easy_version(*args, **kwargs)
                sizes.append(easy.n_train)
                return easy

            data_module.easy_version = recorded
            try:
                out = counter._saved["sanity_check"](doctor, sweep, data, *a, **kw)
            finally:
                data_module.easy_version = easy_version
            if sizes:
                batch = sweep.training.batch_size
                steps = int(out.get("epochs") or 0) * -(-sizes[0] // min(32, sizes[0]))
                counter.epochs += round(steps / -(-data.n_train // batch))
            return out

        Doctor.evaluate, Doctor.sanity_check = evaluate, sanity_check

    def close(self) -> None:
        for name, fn in self._saved.items():
            setattr(self._cls, name, fn)


def main(argv: list[str] | None = None) -> int:
    import cases

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/doctor-benchmark")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--budget", type=int, default=None, help="the search's budget in epochs (default: doctor's own, 48 runs' worth)")
    p.add_argument("--subjects", default=",".join(cases.SUBJECTS))
    p.add_argument("--operators", default="")
    p.add_argument("--arms", default="targeted,random,third", help="targeted (doctor), random (Optuna's random sampler), "
                                                                      "third (doctor at a third of the budget)")
    p.add_argument("--all", action="store_true", help="every case, not the sample")
    p.add_argument("--per-subject", type=int, default=1, help="mutants sampled per subject (without --all)")
    p.add_argument("--against", metavar="BENCHMARK.json", help="another version's benchmark.json on the same machine (doctor's arm "
                                                                "run with that version installed): its medians over the same cases, "
                                                                "and this run's share of them")
    args = p.parse_args(argv)
    budget = args.budget if args.budget is not None else default_budget(args.epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "benchmark.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {"plain": {}, "doctor": {}}
    state["settings"] = {"epochs": args.epochs, "seeds": args.seeds, "budget": budget, "version": remedysweep_version()}
    subjects = args.subjects.split(",")
    operators = set(args.operators.split(",")) if args.operators else None
    todo = [(s, o) for s, o in cases.cases() if s in subjects and (operators is None or o in operators or o in cases.CONTROLS)]
    sampled = not args.all and operators is None
    if sampled:  # screened in a fixed random order per subject until enough show their fault
        import random

        order = {s: random.Random(f"{s}-0").sample([o for t, o in todo if t == s and o not in cases.CONTROLS],
                                                   k=sum(1 for t, o in todo if t == s and o not in cases.CONTROLS)) for s in subjects}
        controls = [(s, "healthy") for s in ("wine", "tokens") if s in subjects] + [(s, "shuffled") for s in ("wine",) if s in subjects]
        todo = controls + [(s, o) for s in subjects for o in order[s]]

    def save() -> None:
        state_file.write_text(json.dumps(state, indent=1))

    from remedysweep.engine.runtime import configure_tensorflow

    configure_tensorflow()
    def plain(s: str, o: str) -> list[float]:
        key = f"{s}/{o}"
        if key not in state["plain"]:
            state["plain"][key] = plain_keras(s, "healthy" if o == "shuffled" else o, args.epochs, args.seeds) if o != "shuffled" \
                else plain_keras_shuffled(s, args.epochs, args.seeds)
            save()
        return state["plain"][key]

    print(f"plain Keras: {f'{args.per_subject} mutant(s) per subject screened in a fixed random order' if sampled else f'{len(todo)} cases'}, "
          f"{args.seeds} seeds, {args.epochs} epochs", flush=True)
    healthy = {s: statistics.median(plain(s, "healthy")) for s in subjects}
    kept = []
    taken: dict[str, int] = {}
    screened = 0
    for s, o in todo:
        if o in cases.CONTROLS:
            plain(s, o)
            kept.append((s, o))
            continue
        if sampled and taken.get(s, 0) >= args.per_subject:
            continue
        screened += 1
        accs = [a if a == a else 0.0 for a in plain(s, o)]
        if statistics.median(accs) < healthy[s] - 0.05:
            kept.append((s, o))
            taken[s] = taken.get(s, 0) + 1
    mutants = [c for c in kept if c[1] not in cases.CONTROLS]
    print(f"kept {len(mutants)} mutants of {screened} screened "
          f"({len({o for _, o in mutants})} operators) where the fault shows; controls: {len(kept) - len(mutants)}", flush=True)
    for arm in args.arms.split(","):
        for s, o in kept:
            key = f"{arm}/{s}/{o}"
            if key in state["doctor"]:
                continue
            r = run_doctor(s, o, "targeted" if arm == "third" else arm, args.epochs, args.seeds,
                           budget // 3 if arm == "third" else budget)
            r["healthy"] = healthy[s]
            r["repaired"] = bool(r["fix_median"] is not None and r["fix_median"] >= healthy[s] - 0.05)
            state["doctor"][key] = r
            save()
            print(f"{arm:8s} {s:12s} {o:16s} {r['seconds']:6.1f}s  {'REPAIRED' if r['repaired'] else ('fix' if r['fix'] else 'no fix'):8s} "
                  f"{r['baseline_median']} -> {r['fix_median']} (healthy {healthy[s]:.3f}) {r['fix']}", flush=True)
    report(state, kept, args.arms.split(","))
    if args.against:
        against(state, json.loads(Path(args.against).read_text()), kept)
    save()
    return 0


def against(state: dict, other: dict, kept: list[tuple[str, str]]) -> None:
    """Doctor's median epochs and seconds per case against another version's,
    over the cases both have run (doctor's arm)."""
    pairs = [(state["doctor"].get(f"targeted/{s}/{o}"), other.get("doctor", {}).get(f"targeted/{s}/{o}")) for s, o in kept]
    pairs = [(a, b) for a, b in pairs if a and b]
    if not pairs:
        print("\nno case in common with the other run")
        return
    version = (other.get("settings") or {}).get("version", "the other version")
    rows = {}
    for key in ("epochs_trained", "seconds"):
        mine = statistics.median([a[key] for a, _ in pairs if a.get(key) is not None])
        theirs = statistics.median([b[key] for _, b in pairs if b.get(key) is not None])
        rows[key] = {"this": mine, "other": theirs, "share": mine / theirs if theirs else None}
    repaired = (sum(a["repaired"] for a, _ in pairs), sum(b["repaired"] for _, b in pairs))
    state["against"] = {"version": version, "cases": len(pairs), **rows, "repaired": list(repaired),
                        "settings": other.get("settings")}
    print(f"\nagainst {version}, doctor's arm on the same {len(pairs)} cases (its settings: {other.get('settings')}):")
    print(f"  median epochs trained per case: {rows['epochs_trained']['this']:g} against {rows['epochs_trained']['other']:g} "
          f"({rows['epochs_trained']['share']:.2f} of it)")
    print(f"  median seconds per case: {rows['seconds']['this']:.1f} against {rows['seconds']['other']:.1f} ({rows['seconds']['share']:.2f} of it)")
    print(f"  mutants repaired: {repaired[0]} against {repaired[1]}")


def plain_keras_shuffled(subject: str, epochs: int, seeds: int) -> list[float]:
    import keras
    import numpy as np

    import cases

    out = []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        model = cases.build(subject, "healthy")
        (x_tr, y_tr), (x_va, y_va) = cases.load(subject, "shuffled")
        model.fit(x_tr, y_tr, epochs=epochs, batch_size=32, verbose=0)
        p = np.asarray(model.predict(x_va, verbose=0))
        pred = (p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(-1)
        out.append(float((pred == y_va).mean()))
        keras.backend.clear_session()
    return out


def report(state: dict, kept: list[tuple[str, str]], arms: list[str]) -> None:
    import cases

    rows = {}
    for arm in arms:
        results = {(s, o): state["doctor"].get(f"{arm}/{s}/{o}") for s, o in kept}
        results = {k: v for k, v in results.items() if v is not None}
        mutants = {k: v for k, v in results.items() if k[1] not in cases.CONTROLS}
        healthy = {k: v for k, v in results.items() if k[1] == "healthy"}
        shuffled = {k: v for k, v in results.items() if k[1] == "shuffled"}
        repaired = sum(v["repaired"] for v in mutants.values())
        times = [v["seconds"] for v in results.values()]
        rows[arm] = {
            "mutants": len(mutants), "repaired": repaired, "share": repaired / max(1, len(mutants)),
            "false_fixes_healthy": sum(bool(v["fix"]) for v in healthy.values()), "healthy": len(healthy),
            "false_fixes_no_signal": sum(bool(v["fix"]) for v in shuffled.values()), "no_signal": len(shuffled),
            "no_signal_named": sum(v["no_signal"] for v in shuffled.values()),
            "crashes": sum(bool(v["error"]) for v in results.values()),
            "median_seconds": statistics.median(times) if times else None,
            "median_epochs": statistics.median(e) if (e := [v["epochs_trained"] for v in results.values() if v.get("epochs_trained")]) else None,
            # how small the claimed fixes are: the changes a user has to make to the model
            "median_changes": statistics.median([len(v["fix"]) for v in mutants.values() if v["repaired"]])
            if repaired else None,
        }
        by_op: dict[str, list[int]] = {}
        for (s, o), v in mutants.items():
            by_op.setdefault(o, [0, 0])
            by_op[o][0] += v["repaired"]
            by_op[o][1] += 1
        rows[arm]["by_operator"] = {o: f"{a}/{b}" for o, (a, b) in sorted(by_op.items())}
    state["summary"] = rows
    print()
    print(f"{'':28s}" + "".join(f"{arm:>22s}" for arm in arms))
    for label, fn in (("repaired (within 0.05 of healthy)", lambda r: f"{r['repaired']}/{r['mutants']} ({r['share']:.0%})"),
                      ("false fixes, healthy models", lambda r: f"{r['false_fixes_healthy']}/{r['healthy']}"),
                      ("false fixes, no-signal data", lambda r: f"{r['false_fixes_no_signal']}/{r['no_signal']}"),
                      ("no-signal named", lambda r: f"{r['no_signal_named']}/{r['no_signal']}"),
                      ("crashes", lambda r: str(r["crashes"])),
                      ("median changes per repair", lambda r: f"{r['median_changes']:g}" if r["median_changes"] else "-"),
                      ("median epochs trained per case", lambda r: f"{r['median_epochs']:g}" if r.get("median_epochs") else "-"),
                      ("median seconds per case", lambda r: f"{r['median_seconds']:.1f}" if r["median_seconds"] else "-")):
        print(f"{label:34s}" + "".join(f"{fn(rows[arm]):>22s}" for arm in arms))
    ops = sorted({o for arm in arms for o in rows[arm]["by_operator"]})
    print()
    for o in ops:
        print(f"  {o:20s}" + "".join(f"{rows[arm]['by_operator'].get(o, '-'):>12s}" for arm in arms))


if __name__ == "__main__":
    sys.exit(main())
