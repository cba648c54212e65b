"""``remedysweep bench``: speed measured side by side in one run, on this machine.

Figures (ratios are of measurements taken in this one run; the two sides of a
ratio alternate where they repeat, so that drift in machine load hits both):

- ``matmul_peak_gflops``: the best float32 matmul of TensorFlow, the library that
  trains (1024² and 2048²), with this process's thread pools. numpy's figure is
  printed beside it for reference; ``OPENBLAS_*`` settings are left as they are.
- ``batched_matmul_ceiling_gflops``: a batched matmul of the packed shapes
  (``[S, 32, 512] x [S, 512, 512]``): the ceiling for training at batch 32.
- ``sweep_packed_speedup``: the quick sweep's runs per minute packed ÷ on the Keras
  path, both as ``remedysweep run`` processes, whole sweep end to end.
- ``packed_steady_efficiency``: training FLOP/s of a pack of the quick sweep's
  runs after its first epoch (which carries the one-time tracing and XLA
  compilation) ÷ ``matmul_peak_gflops``; ``packed_efficiency`` over the whole run.
- ``overhead_ratio``: one run through remedysweep's Keras path (diagnostics,
  in-epoch probes, result stored in a journal study) ÷ the same model with plain
  Keras ``model.fit``.
- ``watch_overhead_ratio``: the same plain ``fit`` with ``remedysweep.keras.Watch``
  at its defaults (probe diagnostics each epoch, the run folder, the model and
  data saved for doctor) ÷ without it.
- ``worker_speedup``: the quick sweep with one worker per core ÷ one worker (not in ``--quick``).
- ``trainer_*_seconds``, ``stacked_speedup``, ``graph_speedup``, ``graph_over_stacked``:
  the same runs of the quick sweep trained in-process through the one router three
  ways: the Keras path alone, graph packs, and every trainer (stacked first).
- ``remedies_*``: ``sweeps/remedies.toml`` packed and with packing off, as
  ``remedysweep run`` processes: its share of runs packed and the time ratio (a
  one-seed, 5-epoch sample of its Adam configurations by default; ``--full`` as shipped).

It asserts nothing: a benchmark, not a test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from remedysweep.engine.folder import TRIALS_CSV
from remedysweep.files import atomic_write, packaged_text, read_csv


def tf_matmul_peak(sizes: tuple[int, ...] = (1024, 2048), repeats: int = 6) -> dict[str, float]:
    """Best float32 GFLOP/s of TensorFlow matmuls (graph mode, warm)."""
    import tensorflow as tf

    out = {}
    for n in sizes:
        a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
        f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[0, :1]))
        f()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            f().numpy()
            best = min(best, time.perf_counter() - t)
        out[f"tf_matmul_{n}_gflops"] = 2 * n**3 / best / 1e9
    out["matmul_peak_gflops"] = max(out.values())
    return out


def numpy_matmul(n: int = 1024, repeats: int = 6) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_time(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def batched_ceiling(slices: int, width: int = 512, batch: int = 32, repeats: int = 10) -> float:
    import tensorflow as tf

    x, w = tf.random.normal([slices, batch, width]), tf.random.normal([slices, width, width])
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(x, w)[:, :1, :1]))
    f()
    best = min(_time(lambda: f().numpy()) for _ in range(repeats))
    return 2 * slices * batch * width * width / best / 1e9


def mlp_train_flops(widths: list[int], samples: int) -> float:
    """Training FLOPs for ``samples`` examples of a Dense chain: 3 x (2 x in x out)."""
    return 3.0 * sum(2.0 * a * b for a, b in zip(widths[:-1], widths[1:])) * samples


def quick_sweep_text() -> str:
    """The shipped quick sweep, read from the installed package."""
    return packaged_text("remedysweep.sweeps", "quick.toml")


TINY_SWEEP = """name = "bench_tiny"
seeds = [0, 1, 2, 3]
[data]
dataset = "blobs"
n_classes = 4
n_features = 16
n_samples = 400
[model]
kind = "mlp"
depth = 2
width = 64
[training]
epochs = 3
[knobs]
loss = ["unfused", "fused_logits"]
learning_rate = [0.01, 0.1]
"""


def _cli_sweep(text: str, folder: Path, name: str, workers: int, pack: bool) -> tuple[float, int]:
    """Run a sweep as the user runs it, a fresh ``remedysweep run`` process;
    returns (wall seconds, runs done)."""
    path = folder / f"{name}.toml"
    atomic_write(path, text.replace("pack = true", "").replace("[training]", f"[training]\npack = {'true' if pack else 'false'}", 1))
    out = folder / name
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "remedysweep", "run", str(path), "--out", str(out), "--workers", str(workers),
                    "--no-report", "--no-progress"], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    return seconds, len(read_csv(out / TRIALS_CSV, 1 << 40))


def sweeps(quick: bool, echo: Callable[[str], None]) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    text = TINY_SWEEP if quick else quick_sweep_text()
    label = "tiny blobs sweep (16 runs)" if quick else "sweeps/quick.toml"
    out: dict[str, Any] = {"sweep": label, "workers": cores}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ways = [("keras", 1, False), ("packed", 1, True)] + ([] if quick else [(f"packed_{cores}w", cores, True)])
        for name, workers, pack in ways:  # --quick leaves out the workers: 16 tiny runs cannot share two cores usefully
            echo(f"  {label}: {name} ({workers} worker{'s' if workers > 1 else ''}) ...")
            seconds, runs = _cli_sweep(text, folder, name, workers, pack)
            out[f"{name}_seconds"] = seconds
            out[f"{name}_runs_per_minute"] = runs / seconds * 60
            echo(f"    {runs} runs in {seconds:.1f} s: {runs / seconds * 60:.1f} runs/min")
        out["sweep_packed_speedup"] = out["packed_runs_per_minute"] / out["keras_runs_per_minute"]
        if not quick:
            out["worker_speedup"] = out[f"packed_{cores}w_runs_per_minute"] / out["packed_runs_per_minute"]
    return out


def _sweep_of(text: str, name: str) -> Any:
    import tomllib

    from .engine.config import parse_sweep

    return parse_sweep(tomllib.loads(text), name)[0]


def trainers_side_by_side(quick: bool, echo: Callable[[str], None]) -> dict[str, Any]:
    """The same runs of one sweep trained in this process three ways, through the
    one router: the Keras path alone, graph packs (then Keras), and every trainer
    (stacked, then graph, then Keras). The quick sweep's configurations on half
    its seeds (36 runs); the tiny sweep on 2 seeds in --quick."""
    import keras

    from .engine.build import Setup
    from .engine.trainers import GRAPH, KERAS, TRAINERS, train_batch

    text = TINY_SWEEP if quick else quick_sweep_text()
    sweep = _sweep_of(text, "quick.toml")
    setup = Setup.load(sweep)
    seeds = sweep.seeds[:2] if quick else sweep.seeds[:6]  # half the quick sweep's seeds: the bench stays within 20 minutes
    runs = [(knobs, seed) for knobs in sweep.grid() for seed in seeds]
    ways = {"keras": (KERAS,), "graph": (GRAPH, KERAS), "stacked": TRAINERS}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    repeats = 1
    echo(f"  {len(runs)} runs of {'the tiny blobs sweep' if quick else 'sweeps/quick.toml'} ({len(seeds)} seeds), "
         f"{sweep.training.epochs} epochs, each way: {', '.join(ways)} ...")
    paths: dict[str, set[str]] = {}
    for i in range(repeats):
        for name in list(ways)[i % 3:] + list(ways)[: i % 3]:
            keras.backend.clear_session()
            t = time.perf_counter()
            results = train_batch(setup, runs, trainers=ways[name])
            seconds[name].append(time.perf_counter() - t)
            paths[name] = {r.path for r in results}
    out = {f"trainer_{name}_seconds": statistics.median(v) for name, v in seconds.items()}
    out["trainer_runs"] = len(runs)
    out["trainer_paths"] = {name: sorted(p) for name, p in paths.items()}
    out["stacked_speedup"] = out["trainer_keras_seconds"] / out["trainer_stacked_seconds"]
    out["graph_speedup"] = out["trainer_keras_seconds"] / out["trainer_graph_seconds"]
    out["graph_over_stacked"] = out["trainer_graph_seconds"] / out["trainer_stacked_seconds"]
    for name in ways:
        echo(f"    {name}: {out[f'trainer_{name}_seconds']:.1f} s (paths: {', '.join(out['trainer_paths'][name])})")
    return out


def remedies_sweep(quick: bool, echo: Callable[[str], None], full: bool = False) -> dict[str, Any]:
    """``sweeps/remedies.toml`` end to end as ``remedysweep run`` processes (one
    worker), packed and with packing off: its share of runs packed and its time.
    By default every configuration with Adam on one seed at 5 epochs (72 runs); ``quick``:
    12 runs at 2 epochs; ``full``: the sweep as shipped (432 runs, 15 epochs)."""
    text = packaged_text("remedysweep.sweeps", "remedies.toml").replace("seeds = [0, 1, 2]", "seeds = [0]")
    if full:
        text = text.replace("seeds = [0]", "seeds = [0, 1, 2]")
    elif quick:  # 12 runs: the loss, batch norm and regularizer, 2 epochs
        for a, b in (("epochs = 15", "epochs = 2"), ('width = [64, 512]', 'width = [64]'), ('activation = ["leaky_relu", "relu", "tanh"]',
                     'activation = ["leaky_relu"]'), ('optimizer = ["adam", "sgd"]', 'optimizer = ["adam"]'), ("width = 512", "width = 64")):
            text = text.replace(a, b)
    else:  # 72 runs: every configuration with Adam, one seed, 5 epochs (the bench stays within 20 minutes)
        text = text.replace("epochs = 15", "epochs = 5").replace('optimizer = ["adam", "sgd"]', 'optimizer = ["adam"]')
    label = "as shipped" if full else "a sample"
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, pack in (("remedies_packed", True), ("remedies_keras", False)):
            echo(f"  sweeps/remedies.toml ({label}): {'packed' if pack else 'packing off'} ...")
            seconds, runs = _cli_sweep(text, folder, name, 1, pack)
            out[f"{name}_seconds"] = seconds
            echo(f"    {runs} runs in {seconds:.1f} s")
            if pack:
                t = read_csv(folder / name / TRIALS_CSV, 1 << 40)
                out["remedies_runs"] = len(t)
                out["remedies_share_packed"] = float((t["path"] != "keras").mean()) if len(t) else 0.0
                out["remedies_paths"] = {str(k): int(v) for k, v in t["path"].value_counts().items()}
    out["remedies_packed_speedup"] = out["remedies_keras_seconds"] / out["remedies_packed_seconds"]
    out["remedies_sample"] = label
    return out


def packed_efficiency(quick: bool, peak: float, echo: Callable[[str], None]) -> dict[str, Any]:
    """One pack of the quick sweep's runs (its MLP, every loss, both learning
    rates, several seeds), early stop off, timed per epoch."""
    import keras

    from .engine.build import Setup
    from .engine.config import DataSpec, ModelSpec, make_sweep
    from .engine.trainers import STACKED, train_batch

    epochs = 3 if quick else 15
    seeds = 2 if quick else 8
    width = 128 if quick else 512
    sweep = make_sweep("bench_pack", model=ModelSpec(kind="mlp", width=width, activation="leaky_relu"), data=DataSpec(dataset="digits"), epochs=epochs)
    sweep = dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))
    setup = Setup.load(sweep)
    runs = [({"loss": loss, "learning_rate": lr}, s) for loss in ("unfused", "keras_default", "fused_logits") for lr in (0.001, 0.015) for s in range(seeds)]
    echo(f"  a pack of {len(runs)} runs, width {width}, {epochs} epochs ...")
    keras.backend.clear_session()
    epoch_seconds: list[float] = []
    t = time.perf_counter()
    results = train_batch(setup, runs, trainers=(STACKED,), max_pack=len(runs), epoch_seconds=epoch_seconds)
    total = time.perf_counter() - t
    assert all(r.path == "stacked" for r in results), [r.path_note or r.message for r in results]
    flops_epoch = mlp_train_flops([64, width, width, 10], setup.data.n_train) * len(runs)
    steady = sum(epoch_seconds[1:])
    out = {
        "pack_size": len(runs),
        "pack_width": width,
        "pack_epochs": epochs,
        "pack_seconds": total,
        "pack_first_epoch_seconds": epoch_seconds[0],
        "packed_gflops": flops_epoch * epochs / sum(epoch_seconds) / 1e9,
        "packed_efficiency": flops_epoch * epochs / sum(epoch_seconds) / 1e9 / peak,
        "packed_steady_gflops": flops_epoch * (epochs - 1) / steady / 1e9 if epochs > 1 else None,
        "packed_steady_efficiency": flops_epoch * (epochs - 1) / steady / 1e9 / peak if epochs > 1 else None,
    }
    echo(f"    {out['packed_gflops']:.1f} GFLOP/s over the run, {out['packed_steady_gflops'] or 0:.1f} after the first epoch")
    return out


def overhead(quick: bool, repeats: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """A remedysweep Keras-path run against plain Keras ``fit`` on the same model,
    data, seed and epochs, alternating."""
    import gc

    import keras

    from .engine.build import Setup, build_run
    from .engine.config import DataSpec, ModelSpec, make_sweep
    from .engine.keras_trainer import run_alone
    from .engine.queue import RunQueue, StorageSpec

    epochs = 3 if quick else 15
    sweep = make_sweep("bench", model=ModelSpec(kind="mlp", width=512), data=DataSpec(dataset="digits"), epochs=epochs,
                       knobs={"loss": ("fused_logits",), "learning_rate": (0.001,)}, pack=False, seeds=tuple(range(repeats)))
    sweep = dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))
    setup = Setup.load(sweep)
    knobs = {"loss": "fused_logits", "learning_rate": 0.001}
    ours, plain, watched = [], [], []
    echo(f"  one run (MLP 64-512-512-10, {epochs} epochs) through remedysweep, through plain fit, and through fit with Watch, "
         f"{repeats} times each ...")
    with tempfile.TemporaryDirectory() as tmp:
        queue = RunQueue.create(StorageSpec.journal(Path(tmp) / "bench.journal"), sweep, "bench")

        def run_plain(seed: int) -> None:
            t = time.perf_counter()
            b = build_run(setup, knobs, seed)
            b.model.fit(b.data.x_train, b.y_train, batch_size=32, epochs=epochs, validation_data=(b.data.x_val, b.y_val), verbose=0)
            plain.append(time.perf_counter() - t)

        def run_watched(seed: int) -> None:
            from .keras import Watch

            t = time.perf_counter()
            b = build_run(setup, knobs, seed)
            watch = Watch(Path(tmp) / f"watch{seed}", data=(b.data.x_val, b.y_val), verbose=False)
            b.model.fit(b.data.x_train, b.y_train, batch_size=32, epochs=epochs, validation_data=(b.data.x_val, b.y_val), verbose=0,
                        callbacks=[watch])
            watched.append(time.perf_counter() - t)

        def run_ours(seed: int) -> None:
            t = time.perf_counter()
            result = run_alone(setup, knobs, seed)
            queue.record(knobs, seed, result)
            ours.append(time.perf_counter() - t)

        sides = [run_plain, run_ours, run_watched]
        for i in range(repeats):  # the same seed on every side, the order rotating
            for fn in sides[i % 3:] + sides[: i % 3]:
                keras.backend.clear_session()
                gc.collect()
                fn(i)
    return {"overhead_ratio": statistics.median(ours) / statistics.median(plain), "remedysweep_run_seconds": statistics.median(ours),
            "plain_keras_run_seconds": statistics.median(plain), "overhead_repeats": repeats,
            "watch_overhead_ratio": statistics.median(watched) / statistics.median(plain), "watched_fit_seconds": statistics.median(watched)}


BENCH_FILE = "bench.json"


def check_bench_out(out: Path) -> Path:
    """Where bench.json goes, checked before anything is measured: a folder that
    can be written, and either no bench.json there or one remedysweep wrote
    (never the user's own file, never through a symlink). Raises ``RunError``."""
    from remedysweep.errors import RunError
    from remedysweep.files import check_writable, not_a_file, read_limited

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: --out must be a folder for {BENCH_FILE}, and this is a file")
    check_writable(out)
    path = out / BENCH_FILE
    if path.is_symlink():
        raise RunError(f"{path}: a symlink; bench writes only its own {BENCH_FILE}, never through a link")
    if path.exists():
        problem = not_a_file(path)
        try:
            data = json.loads(read_limited(path, 1 << 20)) if not problem else None
        except (OSError, ValueError):
            data = None
        ours = isinstance(data, dict) and (data.get("written_by") == "remedysweep" or {"mode", "machine", "matmul_peak_gflops"} <= set(data))
        if not ours:
            raise RunError(f"{path}: not a {BENCH_FILE} remedysweep wrote; give --out another folder")
    return path


def run_bench(quick: bool = False, out: Path = Path("."), full: bool = False, echo: Callable[[str], None] = lambda s: print(s, flush=True)) -> dict[str, Any]:
    from .engine.runtime import configure_tensorflow, threads_per_worker

    path = check_bench_out(out)  # before minutes of measuring, not after

    configure_tensorflow(threads_per_worker(1))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    device = f"GPU ({', '.join(gpus)})" if gpus else f"CPU ({os.cpu_count()} cores)"
    echo(f"remedysweep bench ({'quick' if quick else 'full' if full else 'default'}) on {device}")
    echo("1/5 matmul peak (TensorFlow) and the batched-matmul ceiling ...")
    peak = tf_matmul_peak()
    np_peak = numpy_matmul()
    ceiling = batched_ceiling(12 if quick else 48)
    echo(f"    TensorFlow {peak['matmul_peak_gflops']:.1f} GFLOP/s (numpy {np_peak:.1f}); batched [S,32,512]x[S,512,512]: {ceiling:.1f}")
    echo("2/5 packed efficiency ...")
    pk = packed_efficiency(quick, peak["matmul_peak_gflops"], echo)
    echo("3/5 overhead of a Keras-path run against plain fit ...")
    ov = overhead(quick, 2 if quick else 4, echo)
    echo("4/5 whole sweeps as remedysweep run processes, and the trainers side by side ...")
    sw = sweeps(quick, echo)
    tr = trainers_side_by_side(quick, echo)
    rm = remedies_sweep(quick, echo, full)
    result = {
        "written_by": "remedysweep",
        "mode": "quick" if quick else "full" if full else "default",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "device": device},
        **peak, "numpy_matmul_gflops": np_peak, "batched_matmul_ceiling_gflops": ceiling,
        "batched_matmul_ceiling_efficiency": ceiling / peak["matmul_peak_gflops"], **pk, **ov, **sw, **tr, **rm,
    }
    echo("5/5 results")
    cores = sw["workers"]
    rows = [
        ("matmul_peak_gflops (TensorFlow)", f"{result['matmul_peak_gflops']:.1f} (numpy {np_peak:.1f})"),
        ("batched-matmul ceiling at the packed shapes", f"{ceiling:.1f} GFLOP/s ({result['batched_matmul_ceiling_efficiency']:.0%} of peak)"),
        (f"sweep_packed_speedup ({sw['sweep']}, runs/min packed ÷ Keras path)", f"{sw['sweep_packed_speedup']:.2f}x "
         f"({sw['packed_runs_per_minute']:.1f} vs {sw['keras_runs_per_minute']:.1f}; {sw['packed_seconds']:.0f} s vs {sw['keras_seconds']:.0f} s)"),
        (f"packed_steady_efficiency (pack of {pk['pack_size']}, after epoch 1)", f"{(pk['packed_steady_efficiency'] or 0):.1%} "
         f"({(pk['packed_steady_gflops'] or 0):.1f} GFLOP/s); whole run {pk['packed_efficiency']:.1%}"),
        ("overhead_ratio (Keras-path run ÷ plain fit)", f"{ov['overhead_ratio']:.2f} ({ov['remedysweep_run_seconds']:.2f} s vs {ov['plain_keras_run_seconds']:.2f} s)"),
        ("watch_overhead_ratio (fit with Watch ÷ plain fit)", f"{ov['watch_overhead_ratio']:.2f} ({ov['watched_fit_seconds']:.2f} s vs {ov['plain_keras_run_seconds']:.2f} s)"),
        (f"worker_speedup ({cores} workers ÷ 1, packed)", f"{sw['worker_speedup']:.2f}x" if "worker_speedup" in sw else "(not in --quick)"),
        (f"trainers on the same {tr['trainer_runs']} runs, in-process (keras / graph / stacked)",
         f"{tr['trainer_keras_seconds']:.1f} s / {tr['trainer_graph_seconds']:.1f} s / {tr['trainer_stacked_seconds']:.1f} s: "
         f"graph {tr['graph_speedup']:.2f}x, stacked {tr['stacked_speedup']:.2f}x the Keras path; graph ÷ stacked {tr['graph_over_stacked']:.2f}"),
        (f"remedies_packed_speedup (sweeps/remedies.toml, {rm['remedies_sample']}, {rm['remedies_runs']} runs)",
         f"{rm['remedies_packed_speedup']:.2f}x ({rm['remedies_packed_seconds']:.0f} s vs {rm['remedies_keras_seconds']:.0f} s); "
         f"packed {rm['remedies_share_packed']:.0%} ({', '.join(f'{k} {v}' for k, v in rm['remedies_paths'].items())})"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        echo(f"{name.ljust(width)}  {value}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result, indent=2))
    echo(f"wrote {path}")
    return result
