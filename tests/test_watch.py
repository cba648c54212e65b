"""``remedysweep.keras.Watch`` on the user's own ``fit``: real fits of
Sequential, functional and subclassed models, NumPy and tf.data input,
validation_split, steps_per_execution, initial_epoch and repeated fit calls;
a watched run is classified as the same run in a sweep."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shapes
import zoo
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
    model.compile(optimizer="adam", loss="binary_crossentropy", steps_per_execution=4)
    (xb, yb), (xbv, ybv) = zoo.digits_binary()
    ds = tf.data.Dataset.from_tensor_slices((xb, yb)).shuffle(100, seed=0).batch(32)
    out = tmp_path / "binary"
    model.fit(ds, epochs=3, verbose=0, callbacks=[Watch(out, data=(xbv, ybv), verbose=False, early_probes=3)])
    folder_ok(out)
    assert pd.read_csv(out / "trials.csv")["outcome"].iloc[0] == "healthy"


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
    keras.utils.set_random_seed(0)
    model = zoo.softmax_sparse()
    with pytest.warns(RuntimeWarning, match="stopped watching"):
        h = model.fit(x_tr, y_tr, epochs=2, verbose=0, callbacks=[Watch(tmp_path / "bad", data=(x_va[:, :5], y_va), verbose=False)])
    assert len(h.history["loss"]) == 2  # the user's training went on
    assert np.isfinite(h.history["loss"]).all()
