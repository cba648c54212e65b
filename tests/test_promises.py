"""The third attack on the README's promises: endless reads, unbounded sizes,
orphaned workers, secrets in malformed URLs, files that are not ours, stale
results from code the identity did not cover, journal edge cases, two
coordinators, misleading messages, hostile text. Real processes, real files."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import optuna
import pandas as pd

from conftest import cli, write_sweep
from test_parallel import held_sweep, held_workers, journal_study, release, running_workers, start, wait_for  # noqa: F401 (release is a fixture)
from test_robustness import assert_one_line_error


# ----------------------------------------------------------------------------
# 1. Endless reads
# ----------------------------------------------------------------------------


def test_devices_and_fifos_are_refused_at_once(tmp_path: Path):
    for args in (("run", "/dev/zero"), ("run", "/dev/zero", "--dry-run")):
        t0 = time.monotonic()
        r = cli(*args, timeout=60)
        assert_one_line_error(r, "/dev/zero", "device")
        assert time.monotonic() - t0 < 30
    fifo = tmp_path / "sweep.toml"
    os.mkfifo(fifo)
    assert_one_line_error(cli("run", str(fifo), timeout=60), "FIFO")
    sweep = write_sweep(tmp_path, name="ok", epochs=2)
    journal_fifo = tmp_path / "j.journal"
    os.mkfifo(journal_fifo)
    for storage in (f"journal://{journal_fifo}", "journal:///dev/zero"):
        r = cli("run", str(sweep), "--out", str(tmp_path / f"out{len(storage)}"), "--storage", storage, timeout=120)
        assert_one_line_error(r, "not a regular file")
        assert not (tmp_path / f"out{len(storage)}").exists()


# ----------------------------------------------------------------------------
# 2. Unbounded sizes
# ----------------------------------------------------------------------------


def test_sizes_nobody_means_are_refused_in_one_line(tmp_path: Path):
    sweep = write_sweep(tmp_path)
    sweep.write_text(sweep.read_text().replace("early_probes = 2", "early_probes = 1000000000"))
    assert_one_line_error(cli("run", str(sweep), "--dry-run"), "training.early_probes", "between 0 and 64")
    zoo = Path(__file__).parent / "doctor" / "zoo.py"
    for flag, value in (("--seeds", "1000000000"), ("--epochs", "100000000"), ("--budget", "100000000"), ("--seeds", "0")):
        t0 = time.monotonic()
        r = cli("doctor", "--model", f"{zoo}:softmax_sparse", "--data", f"{zoo}:digits_int", flag, value, "--out", str(tmp_path / "d"))
        assert_one_line_error(r, flag, "must be an integer from")
        assert time.monotonic() - t0 < 60 and not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------
# 3. Orphans
# ----------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_workers_whose_coordinator_is_killed_end_too(tmp_path: Path, release):
    sweep = held_sweep(tmp_path, "orphans")  # every run held after its first epoch: both workers busy
    out = tmp_path / "run"
    proc = start("run", str(sweep), "--out", str(out), "--workers", "2", "--no-progress")
    wait_for(lambda: len(held_workers(tmp_path)) >= 2, proc=proc)  # both workers wait inside a run
    pids = running_workers(out, "orphans")
    os.kill(proc.pid, signal.SIGKILL)  # the coordinator alone: its workers are orphaned
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.5)
    assert not any(_alive(p) for p in pids), "an orphaned worker kept running"
    study = journal_study(out, "orphans")
    workers = {t.system_attrs["remedysweep:worker"]["pid"] for t in study.trials if "remedysweep:worker" in t.system_attrs}
    while time.monotonic() < deadline and any(_alive(p) for p in workers):  # a worker that claimed just as the coordinator died
        time.sleep(0.5)
    assert not any(_alive(p) for p in workers), "an orphaned worker kept running"
    study = journal_study(out, "orphans")  # each orphan released its run on the way out
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,)), "an orphan left its run RUNNING"
    released = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL and "remedysweep:result" not in t.user_attrs]
    assert {t.system_attrs["remedysweep:worker"]["pid"] for t in released} >= set(pids)
    release()  # resuming is test_parallel's; here: the released runs are queued again and finish
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0 and "8/8 runs" in r.stdout, r.stderr


# ----------------------------------------------------------------------------
# 4. Secrets in malformed URLs
# ----------------------------------------------------------------------------


def test_no_form_of_url_leaks_its_password(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    cases = {
        "postgresql:/user:hunter2pw@127.0.0.1/db": ["hunter2pw"],
        "postgresql//user:hunter2pw@127.0.0.1/db": ["hunter2pw"],
        "postgresql://user:Sup3r/S3cr@tAIL@127.0.0.1:1/db": ["Sup3r", "S3cr", "tAIL"],
        "sqlite:///{db}?password=letmein123": ["letmein123"],
    }
    for url, secrets in cases.items():
        url = url.replace("{db}", str(tmp_path / "x.db"))  # never a file in the user's folder
        r = cli("run", str(sweep), "--out", str(tmp_path / "o"), "--storage", url, "--no-report", timeout=120)
        assert r.returncode != 0 or "sqlite" in url
        for s in secrets:
            assert s not in r.stderr and s not in r.stdout, (url, s, r.stderr)
        for f in (tmp_path / "o").rglob("*") if (tmp_path / "o").exists() else []:
            if f.is_file():
                assert not any(s.encode() in f.read_bytes() for s in secrets), (url, f)
        if (tmp_path / "o").exists():
            import shutil

            shutil.rmtree(tmp_path / "o")


# ----------------------------------------------------------------------------
# 5. Files that are not ours
# ----------------------------------------------------------------------------


def test_a_folder_of_someone_elses_files_is_never_touched(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text('{"my": "config"}')
    r = cli("run", str(sweep), "--out", str(mine))
    assert_one_line_error(r, "run.json", "did not write")
    assert sorted(p.name for p in mine.iterdir()) == ["run.json"] and (mine / "run.json").read_text() == '{"my": "config"}'
    other = tmp_path / "other"
    other.mkdir()
    (other / "sweep.json").write_text('{"fingerprint": "x", "sweep": {}}')
    (other / "report.html").write_text("<html>another tool</html>")
    r = cli("run", str(sweep), "--out", str(other), "--force")
    assert_one_line_error(r, "did not write")
    assert (other / "report.html").read_text() == "<html>another tool</html>" and (other / "sweep.json").exists()


def test_doctor_never_writes_into_a_sweeps_run_folder(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".remedysweep.lock"}
    zoo = Path(__file__).parent / "doctor" / "zoo.py"
    r = cli("doctor", "--model", f"{zoo}:softmax_sparse", "--data", f"{zoo}:digits_int", "--out", str(out), "--epochs", "1")
    assert_one_line_error(r, "sweep folder", "choose another --out")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".remedysweep.lock"}
    assert after == before  # journal, trials.csv, sweep.json: untouched


# ----------------------------------------------------------------------------
# 6. Stale results from code the identity did not cover
# ----------------------------------------------------------------------------


def test_editing_a_module_the_builder_imports_or_a_file_the_loader_reads_is_a_new_sweep(tmp_path: Path):
    (tmp_path / "helper.py").write_text("WIDTH = 8\n")
    (tmp_path / "mb.py").write_text(textwrap.dedent("""
        import keras
        import helper

        def build():
            m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(helper.WIDTH, activation="relu"), keras.layers.Dense(3, activation="softmax")])
            m.compile("adam", "sparse_categorical_crossentropy")
            return m
    """))
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((60, 4)).astype("float32"))
    (tmp_path / "ld.py").write_text(textwrap.dedent("""
        import numpy as np
        from pathlib import Path

        def load():
            x = np.load(Path(__file__).parent / "x.npy")
            y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
            return (x[:40], y[:40]), (x[40:], y[40:])
    """))
    (tmp_path / "s.toml").write_text(textwrap.dedent("""
        name = "stale"
        seeds = [0]
        [model]
        builder = "mb.py:build"
        [data]
        loader = "ld.py:load"
        [training]
        epochs = 2
        early_probes = 0
        [knobs]
        learning_rate = [0.001, 0.01]
    """))
    out = tmp_path / "run"
    r = cli("run", str(tmp_path / "s.toml"), "--out", str(out), "--no-report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "identity:" in r.stderr and "helper.py" in r.stderr and "x.npy" in r.stderr
    (tmp_path / "helper.py").write_text("WIDTH = 64\n")
    r = cli("run", str(tmp_path / "s.toml"), "--out", str(out), "--no-report", cwd=tmp_path)
    assert_one_line_error(r, "different sweep definition", "helper.py")
    r = cli("run", str(tmp_path / "s.toml"), "--out", str(out), "--no-report", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert set(pd.read_csv(out / "trials.csv")["n_params"]) == {4 * 64 + 64 + 64 * 3 + 3}  # the new model's results
    np.save(tmp_path / "x.npy", rng.standard_normal((60, 4)).astype("float32"))
    r = cli("run", str(tmp_path / "s.toml"), "--out", str(out), "--no-report", cwd=tmp_path)
    assert_one_line_error(r, "different sweep definition", "x.npy")


# ----------------------------------------------------------------------------
# 7. Journal edge cases
# ----------------------------------------------------------------------------


def _queued_folder(tmp_path: Path, name: str = "edge") -> tuple[Path, Path]:
    sweep = write_sweep(tmp_path, name=name, epochs=2)
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out), "--queue-only")
    assert r.returncode == 0, r.stderr
    return sweep, out


def test_a_claim_torn_between_its_two_writes_is_trained_on_resume(tmp_path: Path):
    sweep, out = _queued_folder(tmp_path)
    study = journal_study(out, "edge")
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    study._storage.set_trial_state_values(waiting[0]._trial_id, state=optuna.trial.TrialState.RUNNING)  # kill -9 here
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0 and "4/4 runs" in r.stdout, (r.stdout, r.stderr)
    t = pd.read_csv(out / "trials.csv")
    assert len(t) == 4 and not t.duplicated(["config_id", "seed"]).any()


def test_a_duplicated_queue_record_trains_its_run_once(tmp_path: Path):
    sweep, out = _queued_folder(tmp_path)
    journal = out / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    create = next(i for i, l in enumerate(lines) if b'"op_code": 4' in l or b'"op_code":4' in l)
    copied = [create] + [i for i in range(create + 1, len(lines)) if b'"trial_id": 0' in lines[i] or b'"trial_id":0' in lines[i]]
    journal.write_bytes(b"".join(lines) + b"".join(lines[i].replace(b'"trial_id": 0', b'"trial_id": 4') for i in copied[:1]))
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0 and "4/4 runs" in r.stdout, (r.stdout, r.stderr)
    study = journal_study(out, "edge")
    trained = [t for t in study.get_trials(deepcopy=False) if "remedysweep:result" in t.user_attrs]
    keys = [t.user_attrs["remedysweep:key"] for t in trained]
    assert len(keys) == len(set(keys)) == 4, keys


def test_an_unknown_journal_record_is_one_line_naming_it(tmp_path: Path):
    sweep, out = _queued_folder(tmp_path)
    journal = out / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:3]) + b'{"op_code": 99, "worker_id": "x"}\n' + b"".join(lines[3:]))
    assert_one_line_error(cli("run", str(sweep), "--out", str(out)), "line 4", "unknown op_code 99")


def test_a_lost_journal_beside_finished_results_is_refused(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    csv = (out / "trials.csv").read_bytes()
    (out / "study.journal").write_bytes(b"")
    assert_one_line_error(cli("run", str(sweep), "--out", str(out)), "study.journal", "4 finished run(s)", "trials.csv")
    assert (out / "trials.csv").read_bytes() == csv


# ----------------------------------------------------------------------------
# 8. Two coordinators on one storage
# ----------------------------------------------------------------------------


def test_two_coordinators_on_a_new_sqlite_file_both_end_with_every_run(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="pair", epochs=2, extra="learning_rate = [0.01, 0.02, 0.03]\n", training="pack = false")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [start("run", str(sweep), "--out", str(tmp_path / f"c{i}"), "--storage", url, "--no-report", "--no-progress") for i in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
        assert "already exists" not in e and "Traceback" not in e
        assert "12/12 runs" in o, (o, e)
    for i in (1, 2):
        t = pd.read_csv(tmp_path / f"c{i}" / "trials.csv")
        assert len(t) == 12 and not t.duplicated(["config_id", "seed"]).any()


# ----------------------------------------------------------------------------
# 9. Messages that mislead
# ----------------------------------------------------------------------------


def test_messages_name_the_real_file_and_place(tmp_path: Path):
    sweep = write_sweep(tmp_path, epochs=2)
    elsewhere = tmp_path / "elsewhere.journal"
    r = cli("run", str(sweep), "--out", str(tmp_path / "r"), "--storage", f"journal://{elsewhere}", "--no-report")
    assert r.returncode == 0 and str(elsewhere) in r.stderr and "r/study.journal" not in r.stderr, r.stderr
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 200)
    assert_one_line_error(cli("run", str(sweep), "--out", str(tmp_path / "s"), "--storage", f"sqlite:///{bad}"), "not a SQLite database")
    folder = tmp_path / "r"
    assert_one_line_error(cli("report", str(folder), "--storage", f"sqlite:///{bad}"), "not a SQLite database")
    csv = folder / "trials.csv"
    data = bytearray(csv.read_bytes())
    data[300] = 0xFF
    csv.write_bytes(bytes(data))
    line = data[:300].count(b"\n") + 1
    assert_one_line_error(cli("report", str(folder)), "byte 300", f"line {line}")


def test_a_database_that_goes_away_mid_sweep_is_one_line(tmp_path: Path, postgres_server):
    url, stop_server = postgres_server
    sweep = write_sweep(tmp_path, name="lost", epochs=40, training="pack = false")
    sweep.write_text(sweep.read_text().replace("[early_stop]\npatience = 2", "[early_stop]\nenabled = false\npatience = 2")
                     + "learning_rate = [0.01, 0.02, 0.03]\n")
    proc = start("run", str(sweep), "--out", str(tmp_path / "run"), "--storage", url, "--no-progress")
    time.sleep(2)
    wait_for(lambda: (tmp_path / "run" / "run.json").exists(), proc=proc)
    time.sleep(8)
    stop_server()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-3000:]
    lines = [l for l in err.strip().splitlines() if l.startswith("remedysweep: error")]
    assert len(lines) == 1 and "lost the storage" in lines[0] and "run the same command again" in lines[0], err[-2000:]
    assert "max length" not in lines[0]  # the driver's reason, not Optuna's guess
    assert "s3cr3t" not in err


# ----------------------------------------------------------------------------
# 10. Hostile text
# ----------------------------------------------------------------------------


def test_escape_sequences_never_reach_the_terminal_and_formulas_never_start_a_cell(tmp_path: Path):
    csv = tmp_path / "d.csv"
    csv.write_text("\x1b]0;pwned\x07\x1b[2J,b,cls\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    (tmp_path / "s.toml").write_text(textwrap.dedent(f"""
        name = "hostile"
        seeds = [0]
        [data]
        path = "{csv}"
        label_column = "nope"
        [model]
        kind = "mlp"
        [knobs]
        loss = ["fused_logits"]
    """))
    r = cli("run", str(tmp_path / "s.toml"))
    assert r.returncode == 2 and "\x1b" not in r.stderr and "\x07" not in r.stderr and "\\x1b" in r.stderr, r.stderr
    plugin = tmp_path / "formula.py"
    plugin.write_text(textwrap.dedent("""
        from remedysweep.remedies import Categorical, Remedy

        class Formula(Remedy):
            name = "formula"
            description = "a knob whose values look like spreadsheet formulas"
            space = Categorical(["=cmd()", "+1", "-x", "@sum", "plain"])
            baseline = "plain"
            touches = ("fit.batch_size",)

            def configure_fit(self, value, fit):
                fit.set("batch_size", 16 + len(value), by=self.name)  # the value only labels the run
    """))
    sweep = write_sweep(tmp_path, name="formula", epochs=2, extra='formula = ["=cmd()", "+1", "-x", "@sum"]\n')
    sweep.write_text(sweep.read_text().replace('name = "formula"', f'name = "formula"\nplugins = ["{plugin}"]'))
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    raw = (out / "trials.csv").read_text()
    for v in ("=cmd()", "+1", "-x", "@sum"):
        assert f",'{v}," in raw or f",'{v}\n" in raw, v
        assert f",{v}," not in raw
    import remedysweep as rs

    assert set(rs.load_results(out).trials["formula"]) == {"=cmd()", "+1", "-x", "@sum"}


def test_a_pickle_beside_a_keras_file_runs_only_where_remedysweep_saved_code(tmp_path: Path):
    """custom_objects.pkl beside a downloaded .keras file, or beside a link to it
    in a folder Watch marked, is never unpickled: the model loads with Keras's
    safe mode instead (in process: the promise is about files, not processes)."""
    import pickle

    import keras

    from conftest import run_main
    from remedysweep.engine.saved import CODE_FOLDER_KIND
    from remedysweep.files import mark_folder

    flag = tmp_path / "the-pickle-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(flag), "w"))

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(downloads / "model.keras")
    (downloads / "custom_objects.pkl").write_bytes(pickle.dumps({"objects": {}, "compile": Payload()}))
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=rng.normal(size=(96, 8)).astype("float32"), y_train=np.arange(96) % 4,
             x_val=rng.normal(size=(32, 8)).astype("float32"), y_val=np.arange(32) % 4)
    watched = tmp_path / "watched"
    watched.mkdir()
    mark_folder(watched, CODE_FOLDER_KIND)
    (watched / "model.keras").symlink_to(downloads / "model.keras")
    (watched / "custom_objects.pkl").symlink_to(downloads / "custom_objects.pkl")
    for folder in (downloads, watched):
        sweep = tmp_path / f"{folder.name}.toml"
        sweep.write_text(textwrap.dedent(f"""
            name = "{folder.name}"
            seeds = [0]
            [data]
            path = "{data}"
            [model]
            path = "{folder / 'model.keras'}"
            [knobs]
            learning_rate = [0.01]
        """))
        r = run_main("run", str(sweep), "--dry-run")
        assert r.returncode == 0, r.stderr
        assert not flag.exists(), f"the pickle beside {folder.name}/model.keras was run"
    # a bare .keras whose Lambda layer holds Python code loads with safe mode on: refused in one line naming the layer kind
    i = keras.Input((8,))
    lam = keras.Model(i, keras.layers.Dense(4, activation="softmax")(keras.layers.Lambda(lambda t: t * 2.0)(i)))
    lam.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    lam.save(downloads / "lambda.keras")
    r = run_main("doctor", "--model", str(downloads / "lambda.keras"), "--data", str(data), "--epochs", "1", "--seeds", "1",
                 "--out", str(tmp_path / "lambda-doctor"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "`Lambda` layer" in r.stderr and "safe_mode" in r.stderr, r.stderr
    assert not (tmp_path / "lambda-doctor").exists()


def test_bench_refuses_files_it_did_not_write_before_measuring(tmp_path: Path):
    """bench's --out is checked first: the user's own bench.json, a link to
    another file, or a file given as the folder is one line, nothing written."""
    from conftest import run_main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "bench.json").write_text('{"my": "numbers"}')
    target = tmp_path / "precious.json"
    target.write_text('{"mode": "quick", "machine": {}, "matmul_peak_gflops": 1}')
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "bench.json").symlink_to(target)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, needle in ((mine, "not a bench.json remedysweep wrote"), (linked, "symlink"), (a_file, "must be a folder")):
        t0 = time.monotonic()
        r = run_main("bench", "--quick", "--out", str(out))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
        assert time.monotonic() - t0 < 10 and "matmul" not in r.stdout  # refused before measuring
    assert (mine / "bench.json").read_text() == '{"my": "numbers"}' and a_file.read_text() == "x"
    assert target.read_text().startswith('{"mode": "quick"')


def test_report_never_replaces_a_report_it_did_not_write(tmp_path: Path):
    """A folder holding a run's CSVs and sweep.json beside the user's own
    report.html or findings.json: report refuses in one line and leaves them."""
    import shutil

    from conftest import HERE, run_main

    for name in ("report.html", "findings.json"):
        folder = tmp_path / name.replace(".", "_")
        shutil.copytree(HERE / "data" / "remedies_run", folder)
        (folder / name).write_text("my own notes")
        r = run_main("report", str(folder))
        assert r.returncode == 2 and name in r.stderr and "not a file remedysweep wrote" in r.stderr, r.stderr
        assert (folder / name).read_text() == "my own notes"
        assert not (folder / ("findings.json" if name == "report.html" else "report.html")).exists()


def test_json_files_that_are_fifos_never_hang_run_report_or_doctor(tmp_path: Path):
    """run.json, sweep.json and doctor.json are read back as regular files only,
    bounded: a FIFO in their place is one line at once (real processes, with a
    deadline, since a hang is the failure)."""
    from remedysweep.files import mark_folder

    sweep = write_sweep(tmp_path, epochs=2)
    report_dir = tmp_path / "report_dir"
    report_dir.mkdir()
    os.mkfifo(report_dir / "sweep.json")
    run_dir = tmp_path / "run_dir"
    run_dir.mkdir()
    mark_folder(run_dir, "sweep")
    os.mkfifo(run_dir / "run.json")
    os.mkfifo(run_dir / "sweep.json")
    doctor_dir = tmp_path / "doctor_dir"
    doctor_dir.mkdir()
    os.mkfifo(doctor_dir / "doctor.json")
    zoo = Path(__file__).parent / "doctor" / "zoo.py"
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    model = ("--model", f"{zoo}:softmax_sparse")
    for args in (("report", str(report_dir)), ("run", str(sweep), "--out", str(run_dir)),
                 ("doctor", *model, "--data", f"{zoo}:digits_int", "--out", str(doctor_dir)),
                 ("doctor", *model, "--data", str(tmp_path / "pipe.csv"), "--out", str(tmp_path / "d1")),
                 ("doctor", *model, "--data", str(tmp_path / "zero.npz"), "--out", str(tmp_path / "d2"))):
        t0 = time.monotonic()
        r = cli(*args, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert time.monotonic() - t0 < 30, args


def test_an_npz_that_declares_more_than_memory_is_refused_before_it_inflates(tmp_path: Path):
    """The arrays' sizes are read from their headers inside the zip: a tiny file
    declaring 37 GiB is one line, and nothing is inflated or trained."""
    import io
    import zipfile

    from numpy.lib import format as npy

    from conftest import run_main

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("x_train", "y_train", "x_val", "y_val"):
            z.writestr(f"{name}.npy", header.getvalue())
    assert bomb.stat().st_size < 10_000
    zoo = Path(__file__).parent / "doctor" / "zoo.py"
    r = run_main("doctor", "--model", f"{zoo}:softmax_sparse", "--data", str(bomb), "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and "bomb.npz needs 149.0 GiB in memory" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "d").exists()  # (loading it would have failed otherwise: its arrays hold no data)
