"""Data from files: an .npz, a CSV and a folder of images, into a sweep on the
user's own model; and what is wrong with them is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import zoo
from conftest import cli

SWEEP = """name = "{name}"
seeds = [0, 1]
[model]
builder = "{model}"
[data]
path = "{path}"
{extra}
[training]
epochs = 3
[knobs]
loss = ["as_built", "fused_logits"]
"""


def _run(tmp_path: Path, name: str, model: str, path: str, extra: str = "") -> pd.DataFrame:
    sweep = tmp_path / f"{name}.toml"
    sweep.write_text(SWEEP.format(name=name, model=f"{zoo.__file__}:{model}", path=path, extra=extra))
    out = tmp_path / f"run_{name}"
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv", keep_default_na=False, na_values=[""])
    assert len(t) == 4 and (t["outcome"] != "failed").all(), t["message"].tolist()
    return t


def test_csv_with_a_label_column(tmp_path: Path):
    (x_tr, y_tr), _ = zoo.digits_int()
    frame = pd.DataFrame(x_tr, columns=[f"p{i}" for i in range(64)])
    frame["digit"] = y_tr
    frame.to_csv(tmp_path / "digits.csv", index=False)
    t = _run(tmp_path, "csv", "softmax_sparse", "digits.csv", 'label_column = "digit"')
    assert set(t["loss"]) == {"as_built", "fused_logits"}


def test_a_folder_of_class_subfolders_of_images(tmp_path: Path):
    from remedysweep.engine.runtime import configure_tensorflow

    configure_tensorflow()
    import keras

    (x_tr, y_tr), _ = zoo.digits_images()
    for i, (img, label) in enumerate(zip(x_tr[:300], y_tr[:300])):
        folder = tmp_path / "images" / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(folder / f"{i}.png", np.repeat(img * 255.0, 3, axis=-1), scale=False)
    t = _run(tmp_path, "images", "rgb_cnn", "images", "image_size = [8, 8]")
    assert (t["chance"] > 0).all()


def test_an_npz_and_what_is_wrong_with_data_files(tmp_path: Path):
    (x_tr, y_tr), (x_va, y_va) = zoo.digits_int()
    np.savez(tmp_path / "d.npz", x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va)
    _run(tmp_path, "npz", "softmax_sparse", "d.npz")
    np.savez(tmp_path / "short.npz", x_train=x_tr, y_train=y_tr)
    x_bad = x_tr.copy()
    x_bad[0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=x_bad, y_train=y_tr, x_val=x_va, y_val=y_va)
    pd.DataFrame({"a": ["x", "y"], "label": [0, 1]}).to_csv(tmp_path / "text.csv", index=False)
    rows = np.random.default_rng(0).integers(0, 3, size=(len(y_tr), 20))  # class labels 0/1/2 in 20 columns: not one-hot rows
    np.savez(tmp_path / "rows.npz", x_train=x_tr, y_train=rows, x_val=x_va, y_val=y_va)
    for name, needle in (("short.npz", "lacks array(s) x_val, y_val"), ("nan.npz", "x_train has 1 NaN/Inf values"),
                         ("text.csv", "column 'a' is not numeric"), ("rows.npz", "is not a one-hot row")):
        sweep = tmp_path / f"bad_{name}.toml"
        sweep.write_text(SWEEP.format(name="bad", model=f"{zoo.__file__}:softmax_sparse", path=name, extra=""))
        r = cli("run", str(sweep), "--out", str(tmp_path / f"out_{name}"))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
        assert "key 'data.path'" in r.stderr and not (tmp_path / f"out_{name}").exists()
