"""Where a run's base model and data come from, and the checks that a user's
model and data fit together before anything runs.

Base models: the built-in MLP / embedding classifier, a ``builder`` function
returning a compiled ``keras.Model`` (``file.py:build`` or ``package.module:build``),
or a saved ``.keras`` file (re-initialised per seed). Data: a built-in set, an
``.npz`` (``x_train, y_train, x_val, y_val``), a CSV (a label column, the rest
numeric features), a folder of class subfolders of images, or a ``loader``
function returning ``((x_train, y_train), (x_val, y_val))``.

Every problem found here is a :class:`~remedysweep.errors.SweepError` naming the
file, the function (or key) and what is wrong.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from remedysweep.errors import SweepError, one_line
from remedysweep.files import available_memory, not_a_file, npz_declared_bytes, open_npz, quiet_stderr, read_csv

from .config import DataSpec, ModelSpec, Sweep
from .data import BUILTIN, Dataset, input_arrays, map_inputs, n_samples

# ----------------------------------------------------------------------------
# User code
# ----------------------------------------------------------------------------


def load_callable(spec: str, file: str, key: str) -> Callable[..., Any]:
    """Import ``path/to/file.py:function`` or ``package.module:function``."""
    target, func = spec.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise SweepError(file, key, f"file {target} not found")
            mod_name = f"remedysweep_user_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
            module = sys.modules.get(mod_name)
            if module is None:
                module_spec = importlib.util.spec_from_file_location(mod_name, path)
                module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
                sys.modules[mod_name] = module
                try:
                    with quiet_stderr():
                        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
                except BaseException:
                    sys.modules.pop(mod_name, None)
                    raise
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            with quiet_stderr():
                module = importlib.import_module(target)
    except SweepError:
        raise
    except BaseException as exc:  # user code: SystemExit included
        raise SweepError(file, key, f"{spec}: cannot import {Path(target).name}: {one_line(exc)}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise SweepError(file, key, f"{spec}: {Path(target).name} has no function {func!r}")
    return fn




# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def _labels(y: Any, name: str, file: str, key: str) -> tuple[np.ndarray, str, int]:
    """Integer labels, the format given (int, one_hot, binary) and the class count."""
    try:
        y = np.asarray(y)
    except Exception as exc:
        raise SweepError(file, key, f"{name} is not an array: {one_line(exc)}") from None
    if y.ndim == 2 and y.shape[1] > 1:
        if not np.all(np.isfinite(y)) or np.any(y < 0):
            raise SweepError(file, key, f"{name}: one-hot labels must be finite and >= 0")
        if np.any(y > 1) or (len(y) and not np.allclose(y.sum(axis=1), 1.0, atol=1e-3)):
            bad = int(np.flatnonzero((y > 1).any(axis=1) | ~np.isclose(y.sum(axis=1), 1.0, atol=1e-3))[0])
            raise SweepError(file, key, f"{name} has shape {y.shape} but row {bad} is not a one-hot row (values in 0..1 summing "
                                        f"to 1): give integer class labels as a 1-D array, or one-hot rows")
        return y.argmax(axis=1).astype("int32"), "one_hot", int(y.shape[1])
    if y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1:
        raise SweepError(file, key, f"{name} must be integer class labels or one-hot rows, got shape {y.shape}")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0))):
        raise SweepError(file, key, f"{name} must hold integer class labels, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise SweepError(file, key, f"{name} has label {int(y.min())}; labels must be 0..N-1")
    return y.astype("int32"), "int", int(y.max()) + 1 if len(y) else 0


def _inputs(x: Any, name: str, file: str, key: str) -> Any:
    if isinstance(x, dict):
        if not x:
            raise SweepError(file, key, f"{name} is an empty dict")
        return {str(k): _array(v, f"{name}[{k!r}]", file, key) for k, v in x.items()}
    if isinstance(x, (tuple, list)) and x and not np.isscalar(x[0]) and np.asarray(x[0]).ndim >= 1 and len(x) <= 64 and all(hasattr(v, "shape") for v in x):
        return tuple(_array(v, f"{name}[{i}]", file, key) for i, v in enumerate(x))
    return _array(x, name, file, key)


def _array(x: Any, name: str, file: str, key: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception as exc:
        raise SweepError(file, key, f"{name} is not an array: {one_line(exc)}") from None
    if a.ndim >= 1 and a.dtype.kind in "USO":
        return _text(a, name, file, key)
    if a.ndim < 1 or a.dtype.kind not in "biuf":
        raise SweepError(file, key, f"{name} must be a numeric array (or an array of strings) with one row per sample, got {a.dtype} of shape {a.shape}")
    if a.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise SweepError(file, key, f"{name} has {bad} NaN/Inf values; clean the data first")
        a = a.astype("float32")
    elif a.dtype.kind == "b":
        a = a.astype("float32")
    return a


def _text(a: np.ndarray, name: str, file: str, key: str) -> np.ndarray:
    """Strings go in as they are (a model with ``TextVectorization`` or
    ``StringLookup`` inside takes them); numeric checks and diagnostics skip them."""
    if a.dtype.kind == "O":
        kinds = {type(v) for v in a.ravel()[:10000]}
        if not kinds <= {str, bytes, np.str_, np.bytes_}:
            shown = ", ".join(sorted(k.__name__ for k in kinds - {str, bytes, np.str_, np.bytes_}))
            raise SweepError(file, key, f"{name} is an object array holding {shown}; inputs are numbers or strings")
    return a.astype(object)


def dataset_from_arrays(name: str, data: Any, file: str, key: str) -> Dataset:
    """Check ``((x_train, y_train), (x_val, y_val))`` and make a :class:`Dataset`."""
    items = list(data) if isinstance(data, (tuple, list)) else [data]
    if any(type(d).__module__.startswith("tensorflow") and "Dataset" in type(d).__name__ for d in items):
        raise SweepError(file, key, f"{name} returned a tf.data dataset; return arrays ((x_train, y_train), (x_val, y_val)) instead: "
                                    "remedysweep reorders the data per seed and draws its probe batch from them")
    try:
        (x_tr, y_tr), (x_va, y_va) = data
    except (TypeError, ValueError):
        raise SweepError(file, key, f"{name} must return ((x_train, y_train), (x_val, y_val)), got {type(data).__name__}") from None
    x_tr, x_va = _inputs(x_tr, "x_train", file, key), _inputs(x_va, "x_val", file, key)
    y_tr, fmt, n_tr = _labels(y_tr, "y_train", file, key)
    y_va, fmt_va, n_va = _labels(y_va, "y_val", file, key)
    if fmt != fmt_va:
        raise SweepError(file, key, f"y_train is {fmt.replace('_', '-')} but y_val is {fmt_va.replace('_', '-')}")
    for split, x, y in (("train", x_tr, y_tr), ("val", x_va, y_va)):
        sizes = {len(a) for a in input_arrays(x)}
        if len(sizes) != 1 or sizes != {len(y)}:
            raise SweepError(file, key, f"x_{split} has {sorted(sizes)} rows but y_{split} has {len(y)}")
        if len(y) < 2:
            raise SweepError(file, key, f"{split} split has {len(y)} samples; at least 2 needed")
    if type(x_tr) is not type(x_va) or (isinstance(x_tr, dict) and set(x_tr) != set(x_va)) or len(input_arrays(x_tr)) != len(input_arrays(x_va)):
        raise SweepError(file, key, "x_train and x_val must have the same inputs")
    for a, b in zip(input_arrays(x_tr), input_arrays(x_va)):
        if a.shape[1:] != b.shape[1:]:
            raise SweepError(file, key, f"x_train rows have shape {a.shape[1:]} but x_val rows {b.shape[1:]}")
    n_classes = max(n_tr, n_va)
    if len(np.unique(y_tr)) < 2:
        raise SweepError(file, key, f"y_train has only class {int(y_tr[0])}; a classifier needs at least two classes")
    if len(np.unique(y_va)) < 2:
        raise SweepError(file, key, f"y_val has only class {int(y_va[0])}: chance would be 1.0 and no accuracy could tell a "
                                    "healthy run from a broken one; give validation data with at least two classes")
    if fmt == "int" and n_classes == 2 and set(np.unique(np.concatenate([y_tr, y_va]))) <= {0, 1}:
        fmt = "binary_or_int"
    ds = Dataset(name, x_tr, y_tr, x_va, y_va, n_classes, fmt)
    return replace(ds, facts=ds.input_facts())


def _check_size(nbytes: int, file: str, key: str, what: str) -> None:
    budget = available_memory() // 3
    if nbytes > budget:
        raise SweepError(file, key, f"{what} needs {nbytes / 2**30:.1f} GiB in memory; this machine has room for about {budget / 2**30:.1f} GiB")


def _npz_inputs(arrays: Any, split: str) -> Any:
    """``x_SPLIT``, or a model's several inputs as ``x_SPLIT__NAME`` (a dict) or
    ``x_SPLIT__0``, ``x_SPLIT__1``, ... (a tuple)."""
    if f"x_{split}" in arrays.files:
        return arrays[f"x_{split}"]
    parts = {k.split("__", 1)[1]: arrays[k] for k in arrays.files if k.startswith(f"x_{split}__")}
    if not parts:
        return None
    if all(k.isdigit() for k in parts):
        return tuple(parts[k] for k in sorted(parts, key=int))
    return parts


def _load_npz(path: Path, file: str) -> Any:
    try:
        _check_size(npz_declared_bytes(path), file, "data.path", path.name)  # before a byte is inflated
    except SweepError:
        raise
    except Exception as exc:
        raise SweepError(file, "data.path", f"{path.name} cannot be read as .npz: {one_line(exc)}") from None
    try:
        with open_npz(path, available_memory() // 3) as arrays:
            x_train, x_val = _npz_inputs(arrays, "train"), _npz_inputs(arrays, "val")
            missing = [k for k, v in (("x_train", x_train), ("y_train", None), ("x_val", x_val), ("y_val", None))
                       if (v is None if k.startswith("x") else k not in arrays.files)]
            if missing:
                raise SweepError(file, "data.path", f"{path.name} lacks array(s) {', '.join(missing)}; it needs x_train, y_train, x_val, y_val "
                                                    "(several inputs as x_train__NAME, x_val__NAME)")
            return ((x_train, arrays["y_train"]), (x_val, arrays["y_val"]))
    except SweepError:
        raise
    except Exception as exc:
        raise SweepError(file, "data.path", f"{path.name} cannot be read as .npz: {one_line(exc)}") from None


def _split(x: Any, y: np.ndarray, fraction: float, file: str, key: str) -> Any:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    idx_tr, idx_va = train_test_split(np.arange(len(y)), test_size=fraction, random_state=0, stratify=stratify)
    return (map_inputs(x, lambda a: a[idx_tr]), y[idx_tr]), (map_inputs(x, lambda a: a[idx_va]), y[idx_va])


def _load_csv(path: Path, spec: DataSpec, file: str) -> Any:
    import pandas as pd

    try:
        frame = read_csv(path, available_memory() // 6)  # the text and the frame both fit
    except Exception as exc:
        raise SweepError(file, "data.path", f"{path.name} cannot be read as CSV: {one_line(exc)}") from None
    if spec.label_column not in frame:
        from .config import did_you_mean

        raise SweepError(file, "data.label_column", f"{path.name} has no column {spec.label_column!r}{did_you_mean(spec.label_column, frame.columns)}; columns: {', '.join(map(str, frame.columns[:20]))}")
    features = frame.drop(columns=[spec.label_column])
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise SweepError(file, "data.path", f"{path.name}: column {non_numeric[0]!r} is not numeric; encode it first")
    labels = frame[spec.label_column]
    if not pd.api.types.is_integer_dtype(labels):
        codes, _ = pd.factorize(labels, sort=True)
        labels = pd.Series(codes)
    return _split(features.to_numpy(dtype="float32"), labels.to_numpy().astype("int64"), spec.validation_fraction, file, "data.path")


def _load_images(path: Path, spec: DataSpec, file: str) -> Any:
    import keras

    try:
        with_labels = keras.utils.image_dataset_from_directory(
            str(path), image_size=tuple(spec.image_size), batch_size=None, shuffle=False, labels="inferred", label_mode="int",
        )
    except Exception as exc:
        raise SweepError(file, "data.path", f"{path}: not a folder of class subfolders of images: {one_line(exc)}") from None
    xs, ys = [], []
    for x, y in with_labels.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise SweepError(file, "data.path", f"{path}: no images found in class subfolders")
    return _split(np.stack(xs).astype("float32"), np.asarray(ys), spec.validation_fraction, file, "data.path")


def load_data(spec: DataSpec, file: str = "<sweep>") -> Dataset:
    """The sweep's data, checked. Raises :class:`SweepError`."""
    if spec.dataset:
        return BUILTIN[spec.dataset](spec)
    if spec.loader:
        fn = load_callable(spec.loader, file, "data.loader")
        try:
            raw = fn()
        except Exception as exc:
            raise SweepError(file, "data.loader", f"{spec.loader}: the function raised {one_line(exc)}") from None
        return dataset_from_arrays(Path(spec.loader.rsplit(":", 1)[0]).stem, raw, file, "data.loader")
    path = Path(spec.path)
    problem = None if path.is_dir() else not_a_file(path)  # a FIFO or /dev/zero behind a data path never hangs or fills memory
    if problem:
        raise SweepError(file, "data.path", f"{path} {problem}")
    if path.is_dir():
        raw = _load_images(path, spec, file)
    elif path.suffix == ".npz":
        raw = _load_npz(path, file)
        from .data import input_arrays

        nbytes = sum(np.asarray(a).nbytes for x, y in raw for a in (*input_arrays(x), y))
        _check_size(nbytes, file, "data.path", path.name)
    else:
        _check_size(path.stat().st_size * 2, file, "data.path", path.name)
        raw = _load_csv(path, spec, file)
    return dataset_from_arrays(path.stem, raw, file, "data.path")


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


def builtin_model(spec: ModelSpec, data: Dataset) -> Any:
    """The built-in classifier, compiled as the remedies' baselines describe it:
    Dense layers of ``width`` units with ``activation``, a softmax output, Keras's
    categorical cross-entropy, Adam at 1e-3."""
    import keras

    if spec.kind == "embedding":
        inputs = keras.Input(data.input_shape, dtype="int32", name="tokens")
        h = keras.layers.Embedding(data.vocab_size, spec.embedding_dim, name="embedding")(inputs)
        h = keras.layers.Flatten(name="flatten")(h)
    else:
        inputs = keras.Input(data.input_shape, name="features")
        h = inputs
    for i in range(1, spec.depth + 1):
        h = keras.layers.Dense(spec.width, activation=spec.activation, name=f"dense_{i}")(h)
    outputs = keras.layers.Dense(data.n_classes, activation="softmax", name="output")(h)
    model = keras.Model(inputs, outputs, name=f"{spec.kind}_{spec.depth}x{spec.width}")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    return model


class ModelSource:
    """Builds the base model of a run: ``build(seed, data) -> compiled keras.Model``."""

    def __init__(self, spec: ModelSpec, file: str = "<sweep>"):
        self.spec = spec
        self.file = file
        self._fn: Callable[[], Any] | None = None

    @property
    def key(self) -> str:
        return "model.builder" if self.spec.builder else "model.path"

    def describe(self) -> str:
        return self.spec.describe()

    def build(self, seed: int, data: Dataset) -> Any:
        import keras

        keras.utils.set_random_seed(seed)
        if self.spec.kind:
            return builtin_model(self.spec, data)
        if self.spec.builder:
            if self._fn is None:
                self._fn = load_callable(self.spec.builder, self.file, "model.builder")
            model = self._fn()
            _check_is_model(model, self.spec.builder, self.file, "model.builder")
            return model
        from . import saved

        try:
            model = saved.load(Path(self.spec.path))
        except Exception as exc:
            raise SweepError(self.file, "model.path", f"{Path(self.spec.path).name} cannot be loaded: {one_line(exc)} "
                                                      "(a model with its own classes or functions loads from a folder "
                                                      "remedysweep.keras.Watch wrote, or give builder = \"FILE.py:FUNCTION\")") from None
        _check_is_model(model, Path(self.spec.path).name, self.file, "model.path")
        return saved.reinitialise(model)


def _check_is_model(model: Any, what: str, file: str, key: str) -> None:
    import keras

    if not isinstance(model, keras.Model):
        raise SweepError(file, key, f"{what} must return a keras.Model, got {type(model).__name__}")
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise SweepError(file, key, f"{what} returned an uncompiled model: call model.compile(optimizer=..., loss=...) before returning it")


# ----------------------------------------------------------------------------
# What user code reads: the sweep's identity covers it
# ----------------------------------------------------------------------------

_WATCH: list[dict[str, set[str]]] = []
_HOOKED = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCH or event != "open":
        return
    path, mode = args[0], args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if not isinstance(path, (str, bytes, os.PathLike)):
        return
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return
    if mode is None and isinstance(flags, int) and flags & os.O_ACCMODE != os.O_RDONLY:
        return
    try:
        _WATCH[-1]["files"].add(os.path.abspath(os.fsdecode(path)))
    except (TypeError, ValueError):
        pass


def _not_users(path: str) -> bool:
    """Files that belong to Python, its packages, remedysweep or the system."""
    import site
    import sysconfig

    here = str(Path(__file__).resolve().parent.parent)
    home = os.path.expanduser("~")
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, here, "/proc", "/sys", "/dev", "/usr", "/etc",
             os.path.join(home, ".keras"), os.path.join(home, ".cache"), os.path.join(home, ".local", "lib"),
             *(site.getsitepackages() if hasattr(site, "getsitepackages") else []), sysconfig.get_paths().get("purelib", "")}
    return any(r and (path == r or path.startswith(r.rstrip("/") + "/")) for r in roots) or "site-packages" in path or "dist-packages" in path


@contextlib.contextmanager
def tracking_reads() -> Iterator[dict[str, set[str]]]:
    """The files user code reads and the modules it imports while the block runs
    (an audit hook on ``open``, and new entries of ``sys.modules``), those of
    Python, its packages and remedysweep left out."""
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)  # audit hooks cannot be removed: one, idle outside this block
        _HOOKED = True
    record: dict[str, set[str]] = {"files": set(), "modules": set()}
    before = set(sys.modules)
    _WATCH.append(record)
    try:
        yield record
    finally:
        _WATCH.remove(record)
        for name, module in list(sys.modules.items()):
            f = getattr(module, "__file__", None)
            if name not in before and f:
                record["modules"].add(os.path.abspath(f))
        record["files"] = {f for f in record["files"] if not _not_users(f) and os.path.isfile(f)}
        record["modules"] = {f for f in record["modules"] if not _not_users(f) and os.path.isfile(f)}


def read_identity(record: dict[str, set[str]], sweep: Sweep) -> dict[str, str]:
    """Identity entries for what user code read: each module's source and each
    data file's content (size and time beyond 256 MiB), beyond the files the
    sweep file names itself."""
    from remedysweep.files import file_digest

    named = {os.path.abspath(p) for p in (sweep.model.builder.rsplit(":", 1)[0] if sweep.model.builder else "",
                                          sweep.data.loader.rsplit(":", 1)[0] if sweep.data.loader else "",
                                          sweep.model.path, sweep.data.path, sweep.source) if p}
    base = Path(sweep.source).resolve().parent if sweep.source and not sweep.source.startswith("<") else Path.cwd()
    out: dict[str, str] = {}
    paths = sorted((record["modules"] | {f for f in record["files"] if not f.endswith((".pyc",))}) - named)
    for path in paths[:500]:
        p = Path(path)
        try:
            label = str(p.relative_to(base))
        except ValueError:
            label = str(p)
        kind = "module" if p.suffix == ".py" else "reads"
        with contextlib.suppress(OSError):
            out[f"{kind} {label}"] = file_digest(p)
    return out


def check_problem(sweep: Sweep) -> Dataset:
    """Load the data and build the base model once (seed 0), and check that they
    fit: inputs, output units against the labels, and one training step of the
    user's loss on a few samples. Raises :class:`SweepError`; writes nothing."""
    with tracking_reads() as record:
        data = _check_problem(sweep)
    check_problem.last_reads = read_identity(record, sweep)  # type: ignore[attr-defined]
    return data


def _check_problem(sweep: Sweep) -> Dataset:
    from .surgery import describe_model

    file = sweep.source
    data = load_data(sweep.data, file)
    source = ModelSource(sweep.model, file)
    where = sweep.model.builder or Path(sweep.model.path).name or sweep.model.kind
    try:
        model = source.build(0, data)
    except SweepError:
        raise
    except (Exception, SystemExit) as exc:  # a builder that calls sys.exit() ends nothing but the check
        raise SweepError(file, source.key, f"{where}: building the model raised {one_line(exc)}") from None
    try:
        info = describe_model(model, data)
    except ValueError as exc:
        raise SweepError(file, source.key, f"{where}: {exc}") from None
    if info.output_units == 1 and data.n_classes > 2:
        raise SweepError(file, source.key, f"{where}: the model has one output unit (binary) but the labels have {data.n_classes} classes")
    if info.output_units > 1 and data.n_classes > info.output_units:
        raise SweepError(file, source.key, f"{where}: the model has {info.output_units} output units but the labels go up to class {data.n_classes - 1}")
    data = adopt_label_format(data, info.output_units)
    problem = check_inputs(model, data)
    if problem:
        raise SweepError(file, source.key, f"{where}: {problem}")
    try:
        import tensorflow as tf

        x = map_inputs(data.x_train, lambda a: tf.constant(a[:4]))
        y = data.targets(data.y_train[:4], data.label_format)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)  # as fit calls it: a model's own train_step included
    except Exception as exc:
        raise SweepError(file, source.key, f"{where}: one training step on 4 samples of the data failed: {one_line(exc)}") from None
    return data


def adopt_label_format(data: Dataset, output_units: int) -> Dataset:
    """Integer 0/1 labels feed a one-unit head as binary targets, a wider head as integers."""
    if data.label_format == "binary_or_int":
        return replace(data, label_format="binary" if output_units == 1 else "int", n_classes=max(2, data.n_classes))
    return data


def check_inputs(model: Any, data: Dataset) -> str | None:
    """Why the data's inputs do not fit the model's, or ``None``."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None  # a subclassed model: Keras will say at the first step
    arrays = data.x_train
    if isinstance(arrays, dict):
        names = [getattr(t, "name", "").split(":")[0] for t in inputs]
        layer_names = [n for n in getattr(model, "input_names", []) or []]
        expected = set(layer_names or names)
        if expected and not set(arrays) <= expected | set(names):
            return f"the data's inputs {sorted(arrays)} do not match the model's inputs {sorted(expected)}"
        return None
    given = len(input_arrays(arrays))
    if given != len(inputs):
        return f"the model has {len(inputs)} input(s) but the data gives {given}"
    for t, a in zip(inputs, input_arrays(arrays)):
        want, got = tuple(t.shape[1:]), tuple(a.shape[1:])
        if len(got) == len(want) - 1 and want[-1:] == (1,):
            got = (*got, 1)  # fit adds the last axis of length 1 (strings into Input((1,), dtype="string"))
        if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
            return f"an input of the model has shape {want} per sample but the data has {tuple(a.shape[1:])}"
        text = a.dtype.kind in "OUS"
        if text != ("string" in str(t.dtype)):
            return (f"an input of the model takes {t.dtype} but the data gives {'strings' if text else a.dtype}")
    return None


def sample_count(data: Dataset) -> int:
    return n_samples(data.x_train)
