"""``remedysweep bench``: speed measured side by side in one run, on this machine.

Figures (all ratios are of medians measured in this one process, alternating the
two sides so that drift in machine load hits both):

- ``overhead_ratio``: one run through remedysweep (diagnostics, in-epoch probes,
  result stored in a journal study) / the same model, data, seed and epochs with
  plain Keras ``model.fit``. Also the ratio of training time alone.
- ``efficiency``: training FLOP/s counted from the model (forward + backward = 3x
  the forward multiply-adds of the Dense layers) / this machine's float32 numpy
  matmul peak, measured in the same run.
- ``steps_per_execution_speedup``: plain Keras at steps_per_execution=16 vs 1.
- ``runs_per_minute``: a sweep with 1 worker and with one worker per core.
- ``early_stop_*``: the same sweep with the collapse-aware early stop off: the
  epochs and training time saved, and the agreement of outcomes.
- ``packed_speedup``: 8 seeds (4 in quick mode) of one quick-sweep MLP trained
  one after another through Keras / the same seeds packed in one graph
  (:mod:`.packed`), and the packed efficiency.

It asserts nothing: a benchmark, not a test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def matmul_peak(n: int = 1024, repeats: int = 8) -> float:
    """Best float32 GFLOP/s of an n x n numpy matmul."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def dense_train_flops(model: Any, samples: int) -> float:
    """Training FLOPs for ``samples`` examples: 3 x (2 x in x out) per Dense layer."""
    import keras

    flops = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            fan_in, fan_out = layer.kernel.shape
            flops += 2.0 * fan_in * fan_out
    return 3.0 * flops * samples


def _median_time(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _bench_sweep(epochs: int) -> Any:
    from .config import DataSpec, EarlyStopSpec, KnobSpec, ModelSpec, OutcomeSpec, Sweep, TrainingSpec

    return Sweep(
        name="bench",
        source="<bench>",
        data=DataSpec(dataset="digits"),
        model=ModelSpec(kind="mlp", depth=2),
        training=TrainingSpec(epochs=epochs),
        knobs=(KnobSpec("loss", ("fused_logits",)), KnobSpec("width", (512,)), KnobSpec("learning_rate", (0.001,))),
        seeds=(0,),
        baseline=(("loss", "fused_logits"), ("width", 512), ("learning_rate", 0.001)),
        outcome=OutcomeSpec(window=min(3, epochs)),
        early_stop=EarlyStopSpec(enabled=False, patience=max(3, min(3, epochs))),
    )


def overhead(epochs: int, repeats: int) -> dict[str, Any]:
    import gc

    import keras
    import optuna

    from remedysweep.remedies import discover

    from . import study as st
    from .data import load_dataset
    from .trial import TrialConfig, build_trial, run_trial

    sweep = _bench_sweep(epochs)
    registry = discover()
    data = load_dataset(sweep.data)
    config = TrialConfig.of(sweep.baseline_config(), 0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ours_total, ours_train, plain_total, plain_train = [], [], [], []
    flops = None
    with tempfile.TemporaryDirectory() as tmp:
        spec = st.StorageSpec.journal(Path(tmp) / "bench.journal")
        study = st.create_or_load(spec.open(), sweep, "bench")

        def plain() -> None:
            nonlocal flops
            t = time.perf_counter()
            built = build_trial(sweep, config, registry, data)
            t_fit = time.perf_counter()
            built.model.fit(built.x_train, built.y_train, batch_size=32, epochs=epochs,
                            validation_data=(built.x_val, built.y_val), shuffle=True, verbose=0)
            end = time.perf_counter()
            plain_total.append(end - t)
            plain_train.append(end - t_fit)
            flops = dense_train_flops(built.model, len(built.x_train)) * epochs

        def ours() -> None:
            t = time.perf_counter()
            st.enqueue(study, config.knob_dict, config.seed)
            tid = st.claim(study)
            result = run_trial(sweep, config, registry, data)
            st.save_result(study, tid, {**dataclasses.asdict(result), "knobs": config.knob_dict, "seed": 0}, [result.final_val_accuracy])
            ours_total.append(time.perf_counter() - t)
            ours_train.append(result.train_seconds)

        for i in range(repeats):  # ABBA order: drift hits both sides alike
            for fn in ((plain, ours) if i % 2 == 0 else (ours, plain)):
                keras.backend.clear_session()
                gc.collect()
                fn()
    med = statistics.median
    return {
        "overhead_ratio": med(ours_total) / med(plain_total),
        "overhead_ratio_training_only": med(ours_train) / med(plain_train),
        "remedysweep_run_seconds": med(ours_total),
        "plain_keras_run_seconds": med(plain_total),
        "plain_keras_train_seconds": med(plain_train),
        "remedysweep_train_seconds": med(ours_train),
        "train_flops": flops,
        "model": "MLP 64-512-512-10 on digits, batch 32, Adam, fused_logits",
        "epochs": epochs,
        "repeats": repeats,
    }


def steps_per_execution(epochs: int, repeats: int, peak_gflops: float) -> dict[str, Any]:
    """Plain Keras fit time at steps_per_execution 1 and 16, and the efficiency of each."""
    import keras

    from remedysweep.remedies import discover

    from .data import load_dataset
    from .trial import TrialConfig, build_trial

    registry = discover()
    out: dict[str, Any] = {}
    for spe in (1, 16):
        sweep = _bench_sweep(epochs)
        sweep = dataclasses.replace(sweep, training=dataclasses.replace(sweep.training, steps_per_execution=spe))
        data = load_dataset(sweep.data)
        times = []
        for _ in range(repeats):
            built = build_trial(sweep, TrialConfig.of(sweep.baseline_config(), 0), registry, data)
            built.model.fit(built.x_train[:64], built.y_train[:64], batch_size=32, epochs=1, verbose=0)  # compile once
            t = time.perf_counter()
            built.model.fit(built.x_train, built.y_train, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
            times.append(time.perf_counter() - t)
            flops = dense_train_flops(built.model, len(built.x_train)) * epochs
        med = statistics.median(times)
        out[f"spe{spe}_seconds"] = med
        out[f"spe{spe}_gflops"] = flops / med / 1e9
        out[f"spe{spe}_efficiency"] = flops / med / 1e9 / peak_gflops
        keras.backend.clear_session()
    out["steps_per_execution_speedup"] = out["spe1_seconds"] / out["spe16_seconds"]
    return out


def packed(epochs: int, n_seeds: int, peak_gflops: float, repeats: int = 1) -> dict[str, Any]:
    """One configuration of the quick sweep's MLP (64-512-512-10, leaky ReLU, Adam,
    batch 32, fused loss) over ``n_seeds`` seeds: each seed through the Keras path
    one after another, against all seeds packed in one graph. Early stop off.
    Medians over ``repeats``, the two sides alternating."""
    import gc

    import keras

    from remedysweep.remedies import discover

    from .config import build_plan
    from .data import load_dataset
    from .models import build_model
    from .packed import run_packed
    from .trial import TrialConfig, base_plan, run_trial

    sweep = _bench_sweep(epochs)
    sweep = dataclasses.replace(sweep, seeds=tuple(range(n_seeds)))
    knobs = {**sweep.baseline_config(), "activation": "leaky_relu", "learning_rate": 0.005}
    registry = discover()
    data = load_dataset(sweep.data)
    separate_times, packed_times, packed_train = [], [], []
    alone: list[Any] = []
    together: list[Any] = []

    def one_by_one() -> None:
        nonlocal alone
        t = time.perf_counter()
        alone = [run_trial(sweep, TrialConfig.of(knobs, s), registry, data, early_stop=False) for s in range(n_seeds)]
        separate_times.append(time.perf_counter() - t)

    def all_packed() -> None:
        nonlocal together
        t = time.perf_counter()
        together = run_packed(sweep, knobs, list(range(n_seeds)), registry, data)
        packed_times.append(time.perf_counter() - t)
        packed_train.append(sum(r.train_seconds for r in together))

    one_epoch = dataclasses.replace(sweep, training=dataclasses.replace(sweep.training, epochs=1))
    first_epoch: list[float] = []

    def packed_one_epoch() -> None:
        first_epoch.append(sum(r.train_seconds for r in run_packed(one_epoch, knobs, list(range(n_seeds)), registry, data)))

    for i in range(repeats):
        for fn in ((one_by_one, all_packed, packed_one_epoch) if i % 2 == 0 else (packed_one_epoch, all_packed, one_by_one)):
            keras.backend.clear_session()
            gc.collect()
            fn()
    assert all(r.outcome != "failed" for r in alone + together)
    model = build_model(sweep.model, build_plan(knobs, registry, base=base_plan(sweep)).model, data.input_shape, data.n_classes)
    flops = dense_train_flops(model, len(data.x_train)) * epochs * n_seeds
    med = statistics.median
    return {
        "packed_seeds": n_seeds,
        "packed_repeats": repeats,
        "separate_seconds": med(separate_times),
        "packed_seconds": med(packed_times),
        "packed_speedup": med(separate_times) / med(packed_times),
        "packed_gflops": flops / med(packed_train) / 1e9,
        "packed_efficiency": flops / med(packed_train) / 1e9 / peak_gflops,
        # After the first epoch (which carries the one-time graph tracing): the
        # training throughput a longer run converges to.
        "packed_steady_efficiency": (flops * (epochs - 1) / epochs) / max(1e-9, med(packed_train) - med(first_epoch)) / 1e9 / peak_gflops
        if epochs > 1 else None,
        "packed_first_epoch_seconds": med(first_epoch),
        "packed_median_final_accuracy": float(np.median([r.final_val_accuracy for r in together])),
        "separate_median_final_accuracy": float(np.median([r.final_val_accuracy for r in alone])),
    }


def runs_per_minute(quick: bool) -> dict[str, Any]:
    """The same sweep with 1 worker and with one worker per core, side by side."""
    cores = os.cpu_count() or 1
    if quick:
        text = """name = "bench_sweep"
seeds = [0, 1]
[data]
dataset = "blobs"
n_classes = 4
n_features = 16
n_samples = 400
[model]
kind = "mlp"
depth = 2
[training]
epochs = 3
[outcome]
window = 2
[early_stop]
patience = 2
[knobs]
loss = ["unfused", "fused_logits"]
width = [32, 64]
"""
    else:
        text = (Path(__file__).resolve().parent.parent / "sweeps" / "quick.toml").read_text()
    out: dict[str, Any] = {"sweep": "tiny blobs sweep (8 runs)" if quick else "sweeps/quick.toml", "workers": cores}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.toml"
        path.write_text(text)
        for workers in (1, cores):
            # Each side as the user runs it: a fresh `remedysweep run` process.
            t = time.perf_counter()
            done = _cli_sweep(path, Path(tmp) / f"w{workers}", workers)
            seconds = time.perf_counter() - t
            out[f"runs_per_minute_{workers}_workers"] = done / seconds * 60
            out[f"seconds_{workers}_workers"] = seconds
        out["worker_speedup"] = out[f"runs_per_minute_{cores}_workers"] / out["runs_per_minute_1_workers"]
        # Early stop: the same sweep, every run to its last epoch, against the
        # early-stopped 1-worker run above.
        full = Path(tmp) / "full.toml"
        full.write_text(_without_early_stop(text))
        _cli_sweep(full, Path(tmp) / "full_length", 1)
        out.update(early_stop_effect(Path(tmp) / "w1" / "trials.csv", Path(tmp) / "full_length" / "trials.csv"))
    return out


def _cli_sweep(path: Path, out: Path, workers: int) -> int:
    """Run a sweep through the command line in a new process; returns runs done."""
    import subprocess
    import sys

    import pandas as pd

    subprocess.run(
        [sys.executable, "-m", "remedysweep.runner.cli", "run", str(path), "--out", str(out),
         "--workers", str(workers), "--no-report", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    return len(pd.read_csv(out / "trials.csv"))


def _without_early_stop(text: str) -> str:
    import re

    text = re.sub(r"(?ms)^\[early_stop\].*?(?=^\[|\Z)", "", text)
    return text + "\n[early_stop]\nenabled = false\npatience = 3\n"


def early_stop_effect(stopped_csv: Path, full_csv: Path) -> dict[str, Any]:
    """Epochs and training time saved by the early stop, and how often the
    outcome of an early-stopped run matches the full-length run of the same
    configuration and seed."""
    import pandas as pd

    a = pd.read_csv(stopped_csv, keep_default_na=False, na_values=[""])
    b = pd.read_csv(full_csv, keep_default_na=False, na_values=[""])
    m = a.merge(b, on=["config_id", "seed"], suffixes=("_stop", "_full"))
    collapsed_full = m[m["outcome_full"] == "collapsed"]
    return {
        "early_stop_runs_compared": int(len(m)),
        "early_stop_runs_stopped": int((m["epochs_run_stop"] < m["epochs_run_full"]).sum()),
        "early_stop_epochs_saved": float(1 - m["epochs_run_stop"].sum() / m["epochs_run_full"].sum()),
        "early_stop_seconds_saved": float(1 - m["train_seconds_stop"].sum() / m["train_seconds_full"].sum()),
        "early_stop_outcome_agreement": float((m["outcome_stop"] == m["outcome_full"]).mean()),
        "early_stop_collapsed_in_full_runs": int(len(collapsed_full)),
        "early_stop_collapsed_agreement": float((collapsed_full["outcome_stop"] == "collapsed").mean()) if len(collapsed_full) else None,
    }


def run_bench(quick: bool = False, out: Path = Path("."), echo: Callable[[str], None] = print) -> dict[str, Any]:
    from .trial import configure_tensorflow

    configure_tensorflow()
    epochs, repeats = (3, 2) if quick else (15, 6)
    peak = matmul_peak()
    echo(f"float32 matmul peak (numpy, 1024x1024): {peak:.1f} GFLOP/s")
    ov = overhead(epochs, repeats)
    achieved = ov["train_flops"] / ov["remedysweep_train_seconds"] / 1e9  # a remedysweep run, diagnostics on
    spe = steps_per_execution(epochs, repeats, peak)
    pk = packed(3 if quick else 15, 4 if quick else 8, peak, repeats=1 if quick else 3)
    rpm = runs_per_minute(quick)
    result = {
        "mode": "quick" if quick else "full",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "matmul_peak_gflops": peak,
        **ov,
        "achieved_gflops": achieved,
        "efficiency": achieved / peak,
        **spe,
        **rpm,
        **pk,
    }
    cores = rpm["workers"]
    rows = [
        ("overhead_ratio (remedysweep run / plain model.fit run)", f"{result['overhead_ratio']:.3f}"),
        ("  training time only", f"{result['overhead_ratio_training_only']:.3f}"),
        ("efficiency of a run (achieved / matmul peak)", f"{result['efficiency']:.1%} ({achieved:.1f} of {peak:.1f} GFLOP/s)"),
        ("steps_per_execution 16 vs 1 (plain Keras)", f"{result['steps_per_execution_speedup']:.2f}x, efficiency {result['spe16_efficiency']:.1%}"),
        (f"runs/minute, 1 worker ({rpm['sweep']})", f"{result['runs_per_minute_1_workers']:.1f}"),
        (f"runs/minute, {cores} workers", f"{result['runs_per_minute_%d_workers' % cores]:.1f}"),
        ("worker speed-up", f"{result['worker_speedup']:.2f}x"),
        ("early stop: epochs saved / train time saved", f"{result['early_stop_epochs_saved']:.1%} / {result['early_stop_seconds_saved']:.1%} "
         f"({result['early_stop_runs_stopped']} of {result['early_stop_runs_compared']} runs stopped)"),
        ("early stop: outcomes equal to full-length runs", f"{result['early_stop_outcome_agreement']:.1%}; collapsed runs "
         + (f"{result['early_stop_collapsed_agreement']:.0%} of {result['early_stop_collapsed_in_full_runs']}" if result["early_stop_collapsed_agreement"] is not None else "none collapsed")),
        (f"packed_speedup ({pk['packed_seeds']} seeds packed vs one after another)", f"{pk['packed_speedup']:.2f}x, packed efficiency {pk['packed_efficiency']:.1%}"
         + (f" (after the first epoch {pk['packed_steady_efficiency']:.1%})" if pk["packed_steady_efficiency"] else "")),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        echo(f"{name.ljust(width)}  {value}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    path.write_text(json.dumps(result, indent=2))
    echo(f"wrote {path}")
    return result
