"""Bad input: one line naming the file and key, exit 2, no traceback, nothing written."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from remedysweep.cli import main

from conftest import cli
from conftest import run_main as in_process

CORPUS = sorted((Path(__file__).parent / "bad_sweeps").glob("*.toml"))


def run_main(*args: str) -> tuple[int, str, str]:
    r = in_process(*args)
    return r.returncode, r.stdout, r.stderr


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_malformed_sweep_is_refused_before_anything_is_written(path: Path, tmp_path: Path):
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ").strip()
    out = tmp_path / "run"
    db = tmp_path / "study.db"
    rc, stdout, stderr = run_main("run", str(path), "--out", str(out), "--storage", f"sqlite:///{db}", "--no-progress")
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(path) in lines[0] and expect in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert not out.exists() and not db.exists()


def test_no_traceback_from_a_real_process(tmp_path: Path):
    r = cli("run", str(CORPUS[0]), "--out", str(tmp_path / "x"), plain=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("run", str(tmp_path / "missing.toml"), plain=True)
    assert r.returncode == 2 and "missing.toml: file not found" in r.stderr


def test_bad_flags_and_storage_urls(tmp_path: Path, tiny_sweep: Path):
    rc, _, err = run_main("run", str(tiny_sweep), "--workers", "0")
    assert rc == 2 and "--workers" in err
    rc, _, err = run_main("run", str(tiny_sweep), "--out", str(tmp_path / "o"), "--storage", "redis://u:secret@h/0")
    assert rc == 2 and "secret" not in err and "storage URL" in err
    assert not (tmp_path / "o").exists()


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real small or read-only file system (root only), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_output_folder_is_a_clear_error(tmp_path: Path, tiny_sweep: Path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        rc, _, err = run_main("run", str(tiny_sweep), "--out", str(ro / "run"))
        assert rc == 2 and "cannot write there" in err and "Traceback" not in err
        assert not any(ro.iterdir())


def test_full_disk_is_refused_before_running(tmp_path: Path, tiny_sweep: Path):
    with tmpfs(tmp_path / "small", "size=4m") as small:
        rc, _, err = run_main("run", str(tiny_sweep), "--out", str(small / "run"))
        assert rc == 2 and "free on that disk" in err
        assert not (small / "run").exists()


def test_disk_full_while_writing_the_report_leaves_no_half_file(tmp_path: Path, tiny_sweep: Path):
    """The report is written to a temporary file and renamed: when the disk fills
    up, the old report stays whole and no partial file is left."""
    from conftest import REPO

    src = tmp_path / "src"
    assert run_main("run", str(tiny_sweep), "--out", str(src), "--queue-only")[0] == 0
    with tmpfs(tmp_path / "full", "size=1m") as full:
        run_dir = full / "run"
        run_dir.mkdir()
        for name in ("sweep.json", "trials.csv"):
            shutil.copy(src / name, run_dir / name)
        old = '<!DOCTYPE html><meta name="generator" content="remedysweep 0.3.0">old report'  # one remedysweep wrote before
        (run_dir / "report.html").write_text(old)
        filler = full / "filler"
        with open(filler, "wb") as fh:  # fill the disk but for a few KiB
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        r = cli("report", str(run_dir), cwd=REPO)
        assert r.returncode == 2 and "cannot write the report" in r.stderr and "Traceback" not in r.stderr
        assert (run_dir / "report.html").read_text() == old
        assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "sweep.json", "trials.csv"]


# ----------------------------------------------------------------------------
# Property-based: generated and mutated sweep files
# ----------------------------------------------------------------------------

VALID = """name = "prop"
seeds = [0, 1]
[data]
dataset = "blobs"
n_classes = 3
[model]
kind = "mlp"
depth = 1
[training]
epochs = 3
[outcome]
window = 2
[early_stop]
patience = 2
[knobs]
loss = ["unfused", "fused_logits"]
learning_rate = [0.001, 0.01]
[sampler]
kind = "grid"
"""
LINES = VALID.splitlines()

values = hs.one_of(
    hs.integers(-5, 100_000),
    hs.floats(allow_nan=True, allow_infinity=True),
    hs.booleans(),
    hs.text(alphabet="abcdefghij_ \"[]{}=.,#\\", max_size=12),
    hs.sampled_from(['["unfused"]', "[]", "[0.0]", '"grid"', '"random"', '{ low = 0.1, high = 0.01 }', "[1, 1]", '"tpe"']),
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, int):
        return str(v)
    return v


@hs.composite
def mutated(draw) -> str:
    lines = list(LINES)
    for _ in range(draw(hs.integers(1, 4))):
        i = draw(hs.integers(0, len(lines) - 1))
        kind = draw(hs.sampled_from(["delete", "value", "duplicate", "rename", "junk"]))
        if kind == "delete":
            lines.pop(i)
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {_toml_value(draw(values))}"
        elif kind == "rename" and "=" in lines[i]:
            key, val = lines[i].split("=", 1)
            lines[i] = f"{draw(hs.sampled_from(['seed', 'epochz', 'loss', 'width', 'kind', 'dataset', 'n_configs']))} ={val}"
        else:
            lines.insert(i, draw(hs.text(alphabet="ab=[]\"'#{}. \n", max_size=10)))
        if not lines:
            break
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_mutated_sweep_files_never_crash(tmp_path_factory, text: str):
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "sweep.toml"
    path.write_text(text)
    out = folder / "run"
    rc, stdout, stderr = run_main("run", str(path), "--out", str(out), "--dry-run")
    assert rc in (0, 2), (rc, stderr)
    assert "Traceback" not in stderr
    if rc == 2:
        assert len(stderr.strip().splitlines()) == 1 and str(path) in stderr
    else:
        assert "is valid" in stdout
    assert not out.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=hs.dictionaries(hs.sampled_from(["name", "seeds", "knobs", "data", "model", "training", "sampler", "zzz"]),
                           hs.one_of(hs.integers(), hs.text(max_size=5), hs.lists(hs.integers(), max_size=3),
                                     hs.dictionaries(hs.sampled_from(["loss", "width", "dataset", "epochs", "kind"]), hs.one_of(hs.integers(), hs.text(max_size=4), hs.lists(hs.integers(0, 3), max_size=2)), max_size=3)),
                           max_size=6))
def test_generated_sweep_structures_are_validated(raw):
    from remedysweep.engine.config import parse_sweep
    from remedysweep.errors import SweepError

    try:
        parse_sweep(raw, "gen.toml")
    except SweepError as exc:
        assert str(exc).startswith("gen.toml: ") and "\n" not in str(exc)


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "sweeps").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_is_valid_with_three_seeds(path: Path, tmp_path: Path):
    from remedysweep.engine.config import load_sweep

    rc, out, err = run_main("run", str(path), "--out", str(tmp_path / "run"), "--dry-run")
    assert rc == 0, err
    sweep, _ = load_sweep(path)
    assert len(sweep.seeds) >= 3
