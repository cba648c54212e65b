"""``remedysweep.keras.Watch`` on the user's own ``fit``: real fits of
Sequential, functional and subclassed models, NumPy and tf.data input,
validation_split, steps_per_execution, initial_epoch and repeated fit calls;
a watched run is classified as the same run in a sweep."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shapes
import zoo
from pages import assert_readable, read_page
from remedysweep.engine.runtime import configure_tensorflow

configure_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from remedysweep.keras import Watch  # noqa: E402


def folder_ok(out: Path) -> dict:
    meta = json.loads((out / "watch.json").read_text())
    assert meta["broken"] is None, meta["broken"]
    t = pd.read_csv(out / "trials.csv")
    assert len(t) == 1 and t["outcome"].iloc[0] in ("healthy", "degraded", "collapsed", "never_learned", "diverged")
    assert (out / "watch.html").exists() and (out / "curves.csv").exists()
    return meta


def test_watch_follows_every_way_fit_is_called(tmp_path: Path):
    (x_tr, y_tr), (x_va, y_va) = zoo.digits_int()
    for i, build in enumerate((zoo.softmax_sparse, zoo.softmax_layer, shapes.subclassed)):
        keras.utils.set_random_seed(0)
        model = build()
        out = tmp_path / f"m{i}"
        w = Watch(out, data=(x_va, y_va), verbose=False)
        model.fit(x_tr, y_tr, validation_data=(x_va, y_va), epochs=2, batch_size=32, verbose=0, callbacks=[w])
        model.fit(x_tr, y_tr, validation_split=0.2, initial_epoch=2, epochs=3, verbose=0, callbacks=[w])  # a second fit goes on
        folder_ok(out)
        assert len(pd.read_csv(out / "curves.csv")) == 3
    keras.utils.set_random_seed(0)
    model = zoo.binary_sigmoid()
    model.compile(optimizer="adam", loss="binary_crossentropy", steps_per_execution=4, metrics=["binary_accuracy"])
    (xb, yb), (xbv, ybv) = zoo.digits_binary()
    ds = tf.data.Dataset.from_tensor_slices((xb, yb)).shuffle(100, seed=0).batch(32)
    out = tmp_path / "binary"
    watch = Watch(out, data=(xbv, ybv), verbose=False, early_probes=3)
    model.fit(ds, epochs=3, verbose=0, callbacks=[watch])
    model.fit(ds, initial_epoch=3, epochs=4, verbose=0, callbacks=[watch])
    folder_ok(out)
    # the probe is traced once for the model, however many epochs, probes and fit calls
    assert watch.probe.probe.compute.experimental_get_tracing_count() == 1
    assert pd.read_csv(out / "trials.csv")["outcome"].iloc[0] == "healthy"
    # the accuracy metric under the name it was compiled with is the training accuracy
    assert pd.read_csv(out / "curves.csv")["accuracy"].between(0.5, 1).all()
    assert "training accuracy" in (out / "watch.html").read_text() and "No training accuracy" not in (out / "watch.html").read_text()


def test_a_watched_run_is_classified_as_the_same_run_in_a_sweep(tmp_path: Path, capsys):
    from remedysweep.engine.build import Setup, build_run
    from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep
    from remedysweep.engine.keras_trainer import run_alone, train_pipeline, val_pipeline
    from remedysweep.engine.sources import check_problem

    sweep = make_sweep("w", model=ModelSpec(builder=f"{shapes.__file__}:collapsing_handwritten"),
                       data=DataSpec(loader=f"{zoo.__file__}:digits_onehot_full"), epochs=15, early_probes=0, pack=False)
    sweep = dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))
    setup = Setup.load(sweep, data=check_problem(sweep))
    setup.base_info()
    in_sweep = run_alone(setup, {}, 0)
    built = build_run(setup, {}, 0)  # the same model, seed and data order, fitted by the user with Watch
    out = tmp_path / "mine"
    built.model.fit(train_pipeline(built, 0, 15), validation_data=val_pipeline(built), epochs=15, steps_per_epoch=built.steps_per_epoch,
                    verbose=0, callbacks=[Watch(out, data=(built.data.x_val, built.y_val), stop_on=())])
    watched = pd.read_csv(out / "trials.csv", keep_default_na=False).iloc[0]
    assert watched["outcome"] == in_sweep.outcome.value
    assert set(filter(None, watched["symptoms"].split(";"))) == set(in_sweep.symptoms)
    if in_sweep.outcome.value == "collapsed":
        assert "remedysweep: epoch" in capsys.readouterr().out  # said when it happened


def test_stop_on_stops_training_and_a_failure_of_its_own_never_breaks_fit(tmp_path: Path):
    (x_tr, y_tr), (x_va, y_va) = zoo.digits_int()
    keras.utils.set_random_seed(0)
    model = zoo.dying_relu()  # never learns: the symptom is there from epoch 1
    h = model.fit(x_tr, y_tr, epochs=10, verbose=0, callbacks=[Watch(tmp_path / "stop", data=(x_va, y_va), stop_on=("dead_units",), verbose=False)])
    assert len(h.history["loss"]) < 10
    with pytest.raises(ValueError, match="unknown symptom"):
        Watch(tmp_path / "x", stop_on=("nope",))
    assert Watch(tmp_path / "y", stop_on="collapsed").stop_on == ("collapsed",)  # one name, not its letters
    w = Watch(tmp_path / "once", data=(x_va, y_va), verbose=False)
    first = zoo.softmax_sparse()
    first.fit(x_tr, y_tr, epochs=1, verbose=0, callbacks=[w])
    second = zoo.softmax_layer()
    with pytest.warns(RuntimeWarning, match="already watches model"):  # a reused Watch never records another model's fit
        second.fit(x_tr, y_tr, epochs=1, verbose=0, callbacks=[w])
    assert pd.read_csv(tmp_path / "once" / "trials.csv")["n_params"].iloc[0] == first.count_params()
    # two Watches never write one folder: a held lock (here this process's) makes the second step aside, training goes on
    from remedysweep.files import LOCK_FILE, FileLock

    FileLock(tmp_path / "once" / LOCK_FILE).acquire().release()  # the lock went with the end of the fit
    with FileLock(tmp_path / "once" / LOCK_FILE):
        other = Watch(tmp_path / "once", data=(x_va, y_va), verbose=False)
        with pytest.warns(RuntimeWarning, match="another remedysweep Watch \\(pid "):
            h = zoo.softmax_sparse().fit(x_tr, y_tr, epochs=2, verbose=0, callbacks=[other])
        assert len(h.history["loss"]) == 2 and len(pd.read_csv(tmp_path / "once" / "curves.csv")) == 1  # not written
    keras.utils.set_random_seed(0)
    model = zoo.softmax_sparse()
    with pytest.warns(RuntimeWarning, match="stopped watching"):
        h = model.fit(x_tr, y_tr, epochs=2, verbose=0, callbacks=[Watch(tmp_path / "bad", data=(x_va[:, :5], y_va), verbose=False)])
    assert len(h.history["loss"]) == 2  # the user's training went on
    assert np.isfinite(h.history["loss"]).all()


def test_what_watch_says_and_writes_for_a_one_hot_collapse(tmp_path: Path, capsys, monkeypatch):
    """Its lines never run on from Keras's progress bar, it says where the page
    is, and the page advises the loss class for one-hot labels, ranked as
    doctor ranks its changes, with every symptom the console printed."""
    (x_tr, y_tr), (x_va, y_va) = zoo.digits_onehot_full()
    keras.utils.set_random_seed(0)
    model = shapes.collapsing_handwritten()
    out = tmp_path / "mine"
    model.fit(x_tr, y_tr, validation_data=(x_va, y_va), epochs=12, batch_size=32, verbose=1, callbacks=[Watch(out, data=(x_va, y_va))])
    printed = capsys.readouterr().out
    ours = [line for line in printed.replace("\r", "\n").splitlines() if "remedysweep:" in line]
    assert ours and all(line.startswith("remedysweep:") for line in ours), ours
    assert f"wrote {out / 'watch.html'}" in ours[-1] and "doctor --from" in ours[-1]
    html = (out / "watch.html").read_text()
    assert "SparseCategoricalCrossentropy" not in html
    assert "No training accuracy was recorded" in html  # compiled without metrics: said, not drawn as an empty panel
    assert_readable(read_page(out / "watch.html", screenshot=tmp_path / "watch.png"))
    meta = json.loads((out / "watch.json").read_text())
    for name in meta["seen"]:
        assert f"<code>{name}</code>" in html, name
    assert "CategoricalCrossentropy(from_logits=True)" in html
    first = html.index("<code>loss=fused_logits</code>")  # the hand-written loss on probabilities is the cause: its remedy comes first
    assert first < html.index("<h2>Symptoms</h2>") and first < html.index("<code>learning_rate="), "the headline says what to try first"
    # doctor --from on this folder (no train_data): it reproduces the collapse, or says it could not and why
    assert meta["watched"]["outcome"] == "collapsed" and meta["watched"]["epochs_run"] == 12 and meta["watched"]["steps_per_epoch"] == 43
    from remedysweep.doctor import diagnose_sources, diagnosis

    stamped = []
    monkeypatch.setattr(diagnosis, "HEARTBEAT_S", 1.0)  # doctor's "still training" line, at a pace this short run shows
    v = diagnose_sources(None, None, from_=out, seeds=2, budget=24, echo=lambda line: stamped.append((time.monotonic(), line)))
    lines = [line for _, line in stamped]
    beats = [line for line in lines if line.startswith("    ... ")]
    assert beats and all(re.search(r"training .*: \d+/\d+ done after \d+ s$", b) for b in beats), beats
    gaps = [b[0] - a[0] for a, b in zip(stamped, stamped[1:])]
    assert max(gaps) < 1.0 + 4.0, max(gaps)  # the beat, plus what doctor does between rounds
    assert v["epochs"] == 12 and "no change needed" not in v["conclusion"], v["conclusion"]
    assert any("Watch was given no train_data" in line and "against the watched run's 43" in line for line in lines[:3]), lines[:3]
    if v["baseline"]["at_chance"] == 0 and not v["baseline"]["degraded"]:
        assert v["conclusion"].startswith("not reproduced: the run you watched ended collapsed") and "train_data=" in v["conclusion"]


USERS_SCRIPT = '''
import sys
import numpy as np
import keras, tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from remedysweep.keras import Watch

def clipped_log(y_true, y_pred):  # the write-up's loss: nobody registers it
    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)

class Scale(keras.layers.Layer):  # a layer of the script's own, with a constructor argument
    def __init__(self, factor, **kw):
        super().__init__(**kw)
        self.factor = factor
    def call(self, x):
        return x * self.factor

x, y = load_digits(return_X_y=True)
x_tr, x_va, y_tr, y_va = train_test_split(x.astype("float32"), y, test_size=0.25, random_state=0, stratify=y)
eye = np.eye(10, dtype="float32")
keras.utils.set_random_seed(0)
inputs = keras.Input((64,))
h = keras.layers.Dense(512, activation="leaky_relu")(Scale(1 / 16)(inputs))
h = keras.layers.Dense(512, activation="leaky_relu")(h)
model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(10)(h)))
model.compile(optimizer=keras.optimizers.Adam(0.015), loss=clipped_log, metrics=["accuracy"])
model.fit(x_tr, eye[y_tr], validation_data=(x_va, eye[y_va]), epochs=12, batch_size=32, verbose=0,
          callbacks=[Watch(sys.argv[1], data=(x_va, eye[y_va]), train_data=(x_tr, eye[y_tr]))])
'''


def test_doctor_from_a_watched_collapsing_run_finds_and_verifies_the_fix(tmp_path: Path):
    """The user's script runs as ``__main__`` in its own process; doctor, in
    another, starts from the folder alone: the loss and layer defined in the
    script come back from the folder, not from the script."""
    import subprocess
    import sys

    from remedysweep.doctor import diagnose_sources, write_doctor_report
    from remedysweep.errors import SweepError

    script = tmp_path / "train.py"
    script.write_text(USERS_SCRIPT)
    run = tmp_path / "runs" / "mine"
    r = subprocess.run([sys.executable, str(script), str(run)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    script.unlink()  # the folder must not need the script any more
    meta = folder_ok(run)
    saved = meta["doctor"]
    assert saved["model"] == "model.keras" and {o["name"] for o in saved["custom_objects"]} == {"clipped_log", "Scale"}
    assert all(o["pickled"] == "by value" for o in saved["custom_objects"])
    assert pd.read_csv(run / "trials.csv")["outcome"].iloc[0] in ("collapsed", "degraded")

    v = diagnose_sources(None, None, from_=run, seeds=2, budget=36, out=tmp_path / "doc")  # epochs: two changes, halved
    assert v["epochs"] == 12  # the watched run's
    assert v["baseline"]["at_chance"] >= 1 and "handwritten_loss" in v["symptom_names"]
    rec = v["recommendation"]
    assert rec is not None and rec["evidence"]["at_chance"] == 0
    assert min(rec["evidence"]["final_accuracy"]) > max(rec["baseline_evidence"]["final_accuracy"])
    assert "confirmed" in v["conclusion"] or "p = " in v["conclusion"]
    # 36 epochs cannot cover the targeted changes: the verdict says the search did not settle
    assert v["search"]["settled"] is False and "budget ran out before the search settled" in v["conclusion"]
    assert write_doctor_report(v, tmp_path / "doc").exists()

    with pytest.raises(SweepError, match="not a run folder remedysweep.keras.Watch wrote"):
        diagnose_sources(None, None, from_=tmp_path)
    with pytest.raises(SweepError, match="either --from FOLDER or --model"):
        diagnose_sources("x.py:f", None, from_=run)


def test_the_python_api_doctors_a_live_model_as_it_was_built(tmp_path: Path):
    """A notebook's model object: adapted Normalization layers keep their
    state through saving and re-initialisation, so a healthy model stays
    healthy and gets no change."""
    from remedysweep import diagnose_model
    from remedysweep.engine import saved

    (x_tr, y_tr), (x_va, y_va) = shapes.digits_two_raw()
    keras.utils.set_random_seed(0)
    model = shapes.normalized_two_inputs()
    norm = [l for l in model.layers if isinstance(l, keras.layers.Normalization)]
    info = saved.save(model, tmp_path)
    assert info["model"] == "model.keras", info
    keras.utils.set_random_seed(1)
    again = saved.reinitialise(saved.load(tmp_path / "model.keras"))
    norm_again = [l for l in again.layers if isinstance(l, keras.layers.Normalization)]
    for a, b in zip(norm, norm_again):
        np.testing.assert_array_equal(np.asarray(a.mean), np.asarray(b.mean))  # the adapted state, as built
    dense, dense_again = ([l for l in m.layers if isinstance(l, keras.layers.Dense)] for m in (model, again))
    assert not np.allclose(np.asarray(dense[0].kernel), np.asarray(dense_again[0].kernel))  # a fresh draw

    v = diagnose_model(model, x_tr, y_tr, validation_data=(x_va, y_va), epochs=6, seeds=2, budget=24, echo=lambda s: None)
    assert v["baseline_outcome"] == "healthy", v["conclusion"]
    assert v["recommendation"] is None
    assert min(v["baseline"]["final_accuracy"]) > 0.8


def test_tensorboard_gets_the_diagnostics_or_one_warning(tmp_path: Path):
    """With TensorBoard installed (the ``tensorboard`` extra) the diagnostics are
    scalars in LOGDIR/NAME; without it, one warning and the rest of the watch
    goes on."""
    import importlib.util
    import warnings

    (x_tr, y_tr), (x_va, y_va) = zoo.digits_int()
    keras.utils.set_random_seed(0)
    model = zoo.softmax_sparse()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x_tr, y_tr, epochs=3, verbose=0, callbacks=[Watch(tmp_path / "run", data=(x_va, y_va), tensorboard=tmp_path / "tb",
                                                                    verbose=False, name="mine")])
    ours = [w for w in caught if "remedysweep" in str(w.message)]
    folder_ok(tmp_path / "run")
    if importlib.util.find_spec("tensorboard") is not None:
        assert not ours, [str(w.message) for w in ours]
        assert list((tmp_path / "tb" / "mine").glob("events.out.tfevents.*"))
    else:
        assert len(ours) == 1 and "no TensorBoard scalars" in str(ours[0].message)


def test_watch_never_writes_through_a_link_in_its_folder(tmp_path: Path):
    """A Watch folder whose model.keras and data.npz are links to the user's own
    files: the links are replaced, the files they point to are left as they were."""
    from remedysweep.files import mark_folder

    out = tmp_path / "mine"
    out.mkdir()
    mark_folder(out, "watch")
    precious = {name: tmp_path / f"precious-{name}" for name in ("model.keras", "data.npz", "custom_objects.pkl")}
    for name, target in precious.items():
        target.write_bytes(b"the user's own bytes")
        (out / name).symlink_to(target)
    (x_tr, y_tr), (x_va, y_va) = zoo.digits_int()
    keras.utils.set_random_seed(0)
    zoo.softmax_sparse().fit(x_tr, y_tr, epochs=1, verbose=0, callbacks=[Watch(out, data=(x_va, y_va), verbose=False)])
    for name, target in precious.items():
        assert target.read_bytes() == b"the user's own bytes", name
    assert not (out / "model.keras").is_symlink() and not (out / "data.npz").is_symlink()
    folder_ok(out)


def test_what_watch_cannot_watch_is_one_line_at_the_start(tmp_path: Path):
    """A tf.data pipeline as data=, labels beyond the output units and a
    two-output model: one warning line each when training begins, and the
    user's fit goes on."""
    (x_tr, y_tr), (x_va, y_va) = zoo.digits_int()
    ds = tf.data.Dataset.from_tensor_slices((x_va, y_va)).batch(32)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    two = keras.Model(inputs, [keras.layers.Dense(10, activation="softmax")(h), keras.layers.Dense(10, activation="softmax")(h)])
    two.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "sparse_categorical_crossentropy"])
    cases = [(zoo.softmax_sparse(), (x_tr, y_tr), ds, "takes a pair of arrays"),
             (zoo.softmax_sparse(), (x_tr, y_tr), (x_va, y_va + 10), "go up to class 19, but the model has 10 output units"),
             (two, (x_tr, (y_tr, y_tr)), None, "the model has 2 outputs")]
    for i, (model, (x, y), data, needle) in enumerate(cases):
        with pytest.warns(RuntimeWarning) as seen:
            h = model.fit(x, y, epochs=1, verbose=0, callbacks=[Watch(tmp_path / f"w{i}", data=data, verbose=False)])
        lines = [str(w.message) for w in seen if "remedysweep Watch" in str(w.message)]
        assert len(lines) == 1 and needle in lines[0] and "\n" not in lines[0], lines
        assert len(h.history["loss"]) == 1  # the user's training went on
