"""The README's promises under attack: each reproduction of a way they broke,
with real processes and real files (the PostgreSQL password forms are in
test_postgres.py, SIGTERM and SIGHUP in test_parallel.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import cli, write_sweep


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ----------------------------------------------------------------------------
# 1. A torn journal
# ----------------------------------------------------------------------------


def test_power_loss_torn_journal_resumes_and_damage_is_one_line(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    out = tmp_path / "r"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    journal = out / "study.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-60])  # truncate -s -60: a torn last line
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    assert "torn last record" in r.stderr and "4/4 runs" in r.stdout
    r = cli("run", str(sweep), "--out", str(out), "--no-report")  # and the next run too
    assert r.returncode == 0 and "4/4 runs" in r.stdout, r.stderr
    for damage in (b"garbage\n", b"\xff\xfe\xfd\n"):
        lines = journal.read_bytes().split(b"\n")
        journal.write_bytes(b"\n".join(lines[:5]) + b"\n" + damage + b"\n".join(lines[5:]))
        before = journal.read_bytes()
        r = cli("run", str(sweep), "--out", str(out), "--no-report")
        assert_one_line_error(r, "study.journal", "line 6", "damaged", "trials.csv")
        assert journal.read_bytes() == before  # nothing appended
        assert cli("report", str(out)).returncode == 0  # the finished runs stay readable
        journal.write_bytes(b"\n".join(lines) )


# ----------------------------------------------------------------------------
# 2. Two coordinators
# ----------------------------------------------------------------------------


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "remedysweep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_coordinators_never_double_the_work(tmp_path: Path):
    big = write_sweep(tmp_path, name="g", extra="learning_rate = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01]\n"
                                                 "label_smoothing = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]\n")
    out = tmp_path / "X"
    a = _start("run", str(big), "--out", str(out), "--queue-only")
    time.sleep(0.3)
    b = _start("run", str(big), "--out", str(out), "--queue-only")
    outs = [p.communicate(timeout=300) for p in (a, b)]
    codes = sorted(p.returncode for p in (a, b))
    assert codes in ([0, 0], [0, 2]), outs
    queued = sum(int(o.split("queued: ")[1].split()[0]) for o, _ in outs if "queued: " in o)
    assert queued == 400
    refused = [e for (o, e), p in zip(outs, (a, b)) if p.returncode == 2]
    assert all("another remedysweep run" in e for e in refused)
    from optuna.storages.journal import JournalFileBackend
    import optuna

    study = optuna.load_study(study_name="g", storage=optuna.storages.JournalStorage(JournalFileBackend(str(out / "study.journal"))))
    assert len(study.trials) == 400  # not 742


def test_two_plain_runs_on_one_folder(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="twice", epochs=6, extra="learning_rate = [0.01, 0.05]\n", training="pack = false")
    out = tmp_path / "X"
    a = _start("run", str(sweep), "--out", str(out), "--no-report", "--no-progress")
    time.sleep(0.2)
    b = _start("run", str(sweep), "--out", str(out), "--no-report", "--no-progress")
    (oa, ea), (ob, eb) = a.communicate(timeout=300), b.communicate(timeout=300)
    results = {a.returncode: (oa, ea), b.returncode: (ob, eb)}
    assert sorted(results) == [0, 2], (oa, ea, ob, eb)
    assert "8/8 runs" in results[0][0]
    assert "another remedysweep run" in results[2][1] and "is using this folder" in results[2][1]
    t = pd.read_csv(out / "trials.csv")
    assert len(t) == 8 and not t.duplicated(["config_id", "seed"]).any()


# ----------------------------------------------------------------------------
# 5, 6. Sizes and nesting
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("extra, key", [
    ("".join(f"{k} = [{', '.join(str(round(0.001 * (i + 1), 6)) for i in range(200))}]\n" for k in ("learning_rate",))
     + "label_smoothing = [" + ", ".join(str(round(0.0025 * i, 6)) for i in range(200)) + "]\n"
     + "batch_size = [" + ", ".join(str(8 + i) for i in range(200)) + "]\n"
     + "width = [" + ", ".join(str(8 + i) for i in range(200)) + "]\n"
     + 'optimizer = ["sgd", "momentum", "adam", "rmsprop", "adagrad", "adamw", "nadam"]\n'
     + 'activation = ["relu", "leaky_relu", "elu", "tanh", "gelu", "selu", "swish"]\n', "knobs"),
])
def test_a_huge_grid_is_refused_without_being_built(tmp_path: Path, extra: str, key: str):
    sweep = write_sweep(tmp_path, extra=extra)
    t = time.monotonic()
    r = cli("run", str(sweep), "--out", str(tmp_path / "run"), "--dry-run")
    assert_one_line_error(r, f"key '{key}'", "313600000000 runs", "limits.max_runs")
    assert time.monotonic() - t < 30 and not (tmp_path / "run").exists()


def test_sizes_are_checked_before_anything_is_allocated(tmp_path: Path):
    seeds = write_sweep(tmp_path, name="seeds")
    seeds.write_text(seeds.read_text().replace("seeds = [0, 1]", "seeds = [" + ", ".join(map(str, range(1_000_000))) + "]"))
    assert_one_line_error(cli("run", str(seeds), "--dry-run"), "key 'seeds'", "limits.max_runs")
    for key, size in (("n_samples", "n_samples = 1000000000"), ("n_features", "n_samples = 2000\nn_features = 1000000")):
        s = write_sweep(tmp_path, name=key)
        s.write_text(s.read_text().replace("n_samples = 240\n", "").replace("n_features = 8\n", "").replace("[data]\n", f"[data]\n{size}\n"))
        assert_one_line_error(cli("run", str(s), "--out", str(tmp_path / key)), f"key 'data.{key}'", *(("GiB",) if key == "n_features" else ()))
        assert not (tmp_path / key).exists()


def test_deeply_nested_toml_is_one_line(tmp_path: Path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_one_line_error(cli("run", str(path), "--dry-run"), "deep.toml")


def test_a_short_sweep_needs_no_outcome_settings(tmp_path: Path):
    for epochs in (1, 2):
        r = cli("run", _without_outcome(tmp_path, epochs), "--dry-run")
        assert r.returncode == 0, r.stderr


def _without_outcome(tmp_path: Path, epochs: int) -> str:
    p = write_sweep(tmp_path, name=f"short{epochs}", epochs=epochs)
    p.write_text(p.read_text().replace("[outcome]\nwindow = 2\n", "").replace("[early_stop]\npatience = 2\n", ""))
    return str(p)


# ----------------------------------------------------------------------------
# 7. Plugin code, --force, --storage
# ----------------------------------------------------------------------------

PLUGIN = '''from remedysweep.remedies import Categorical, Remedy


class Tag(Remedy):
    name = "tag"
    description = "A plugin whose transform raises a message"
    space = Categorical(["a", "b"])
    baseline = "a"
    touches = ("model.transform",)

    def transform_model(self, value, model):
        if value == "b":
            raise RuntimeError("MESSAGE")
        return model
'''


def test_edited_plugin_code_is_a_different_sweep_and_force_really_discards(tmp_path: Path):
    plugin = tmp_path / "tag_plugin.py"
    plugin.write_text(PLUGIN.replace("MESSAGE", "old message"))
    sweep = write_sweep(tmp_path, name="plug", epochs=2, extra='tag = ["a", "b"]\n')
    sweep.write_text(f'plugins = ["{plugin}"]\n' + sweep.read_text())
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    plugin.write_text(PLUGIN.replace("MESSAGE", "new message"))
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert_one_line_error(r, "different sweep definition", "plugin tag")
    assert cli("run", str(sweep), "--out", str(out), "--dry-run").returncode == 2  # not accepted as a resume either
    r = cli("run", str(sweep), "--out", str(out), "--no-report", "--force")
    assert r.returncode == 0 and "resuming" not in r.stderr, r.stderr
    t = pd.read_csv(out / "trials.csv", keep_default_na=False, na_values=[""])
    assert t[t["tag"] == "b"]["message"].str.contains("new message").all() and len(t) == 8


def test_a_listed_plugin_that_fails_to_import_is_named(tmp_path: Path):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text("import no_such_module_anywhere\n")
    sweep = write_sweep(tmp_path, name="brk")
    sweep.write_text(f'plugins = ["{plugin}"]\n' + sweep.read_text())
    assert_one_line_error(cli("run", str(sweep), "--dry-run"), "key 'plugins'", "broken_plugin", "No module named 'no_such_module_anywhere'")


def test_switching_storage_on_a_finished_folder_is_refused(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    r = cli("run", str(sweep), "--out", str(out), "--storage", f"sqlite:///{tmp_path / 'other.db'}")
    assert_one_line_error(r, "holds results stored in journal:study.journal")


def test_a_plugin_importing_keras_prints_no_tensorflow_logs(tmp_path: Path):
    plugin = tmp_path / "kplugin.py"
    plugin.write_text("import keras\n" + PLUGIN)
    sweep = write_sweep(tmp_path, name="kp", extra='tag = ["a"]\nbogus_knob = ["x"]\n')
    sweep.write_text(f'plugins = ["{plugin}"]\n' + sweep.read_text())
    assert_one_line_error(cli("run", str(sweep), "--dry-run", plain=True), "knobs.bogus_knob")
    r = cli("remedies", "--plugin", str(plugin), plain=True)
    assert r.returncode == 0 and r.stderr.strip() == ""


# ----------------------------------------------------------------------------
# 8, 9. Reports and what a user sees
# ----------------------------------------------------------------------------

MATH_PLUGIN = PLUGIN.replace('Categorical(["a", "b"])', 'Categorical(["a", "$\\\\undefinedcmd{x}$"])').replace('if value == "b"', 'if value == "never"')


def test_text_is_never_parsed_as_math(tmp_path: Path):
    plugin = tmp_path / "math_plugin.py"
    plugin.write_text(MATH_PLUGIN)
    sweep = write_sweep(tmp_path, name="mathtext", epochs=2, extra='tag = ["a", "$\\\\undefinedcmd{x}$"]\n')
    sweep.write_text(f'plugins = ["{plugin}"]\n' + sweep.read_text())
    out = tmp_path / "$\\undefinedcmd{x}$"
    r = cli("run", str(sweep), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "undefinedcmd" in (out / "report.html").read_text()


def test_unreadable_results_are_one_line(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    good = (out / "trials.csv").read_text()
    (out / "trials.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")
    assert_one_line_error(cli("report", str(out)), "trials.csv")
    (out / "trials.csv").write_text(good.replace("healthy", "sparkly", 1) if "healthy" in good else good.replace(",collapsed,", ",sparkly,", 1))
    assert_one_line_error(cli("report", str(out)), "trials.csv", "unknown outcome 'sparkly'")
    assert not (out / "report.html").exists()


def test_a_sweep_whose_only_knob_is_a_plugin_reads_sensibly(tmp_path: Path):
    plugin = tmp_path / "only_plugin.py"
    plugin.write_text(PLUGIN.replace('if value == "b"', 'if value == "never"'))
    sweep = write_sweep(tmp_path, name="only", epochs=2, losses='["as_built"]', extra='tag = ["a", "b"]\n')
    sweep.write_text(f'plugins = ["{plugin}"]\n' + sweep.read_text().replace('loss = ["as_built"]\n', ""))
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out)).returncode == 0
    import json

    lines = json.loads((out / "findings.json").read_text())["lines"]
    assert lines and not any("tag = a" in l and l.count("tag = a") > 1 for l in lines)
    assert "tag" in " ".join(lines)


def test_the_suite_leaves_no_plugin_in_the_environment(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", "remedysweep", "remedies"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "focal_loss" not in r.stdout


def test_the_shipped_quick_sweep_travels_with_the_package():
    from remedysweep.bench import quick_sweep_text

    assert 'name = "quick"' in quick_sweep_text()
