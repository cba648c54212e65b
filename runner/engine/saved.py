"""A user's model saved so that another process can train it again: the Keras
file, plus the user's own classes and functions nobody registered.

``model.save`` writes only the *names* of a loss, layer or metric that is not
Keras's own; loading needs the objects themselves. :func:`save` therefore also
writes ``custom_objects.pkl``: every non-Keras class and function the model,
its loss and its metrics use, pickled with cloudpickle. Objects from the user's
own files (a training script's ``__main__``, a module next to it) are pickled
*by value*, as they were when training began, so the folder does not depend on
the script still being importable or unchanged; objects from installed packages
are pickled by reference.

Loading runs that code, as importing the user's script would: only load a
folder you wrote (``doctor --from`` checks the folder's remedysweep marker).

:func:`reinitialise` gives a loaded model fresh weights from its layers' own
initializers while adapted preprocessing state (``Normalization``,
``StringLookup``, ...) and layers without initializers stay as saved: a new
seed of the same model, as the user built it.
"""

from __future__ import annotations

import inspect
import sys
import sysconfig
from pathlib import Path
from typing import Any

from remedysweep.files import atomic_write, load_pickle, save_arrays, save_model

MODEL_FILE = "model.keras"
OBJECTS_FILE = "custom_objects.pkl"
#: The most a saved custom_objects.pkl may hold (the user's classes and functions, pickled by value).
OBJECTS_LIMIT = 256 << 20
DATA_FILE = "data.npz"
#: The data sample kept beside the model: at most this many bytes of arrays.
SAMPLE_BYTES = 64 << 20

_KERAS_MODULES = ("keras", "tensorflow", "tf_keras", "builtins", "numpy", "functools", "abc", "typing")


def _is_own(obj: Any) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return bool(module) and not module.split(".")[0] in _KERAS_MODULES and hasattr(obj, "__qualname__")


def _installed(module_name: str) -> bool:
    """A module from an installed package (pickled by reference), not the user's file."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return module_name != "__main__"
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    resolved = str(Path(file).resolve())
    return any(resolved.startswith(str(Path(r).resolve())) for r in roots)


def custom_objects(model: Any) -> dict[str, Any]:
    """The model's own (non-Keras) classes and functions, by the name Keras
    looks them up by: the model class, layer classes, functions and objects set
    on layers (activations, initializers, regularizers), the loss and metrics."""
    import keras

    found: dict[str, Any] = {}

    def add(obj: Any) -> None:
        if obj is None or isinstance(obj, (str, int, float, bool)):
            return
        target = obj if (inspect.isfunction(obj) or inspect.isclass(obj)) else type(obj)
        if not _is_own(target):
            fn = getattr(obj, "fn", None) or getattr(obj, "_fn", None)  # keras's wrappers around a plain function
            if fn is not None and fn is not obj and inspect.isfunction(fn):
                add(fn)
            return
        found.setdefault(target.__name__, target)
        fn = getattr(obj, "fn", None) or getattr(obj, "_fn", None)
        if fn is not None and inspect.isfunction(fn):
            add(fn)

    add(type(model))
    for layer in model._flatten_layers(include_self=False, recursive=True):
        add(type(layer))
        for owner in (layer, getattr(layer, "cell", None)):
            for value in vars(owner).values() if owner is not None else ():
                if inspect.isfunction(value) or isinstance(value, (keras.initializers.Initializer, keras.regularizers.Regularizer,
                                                                     keras.constraints.Constraint)):
                    add(value)
        if isinstance(layer, keras.layers.Lambda):
            add(getattr(layer, "function", None))
    config = getattr(getattr(model, "_compile_config", None), "config", None) or {}
    losses = config.get("loss")
    for loss in losses.values() if isinstance(losses, dict) else losses if isinstance(losses, (list, tuple)) else [losses]:
        add(loss)
    metrics = config.get("metrics") or []
    for m in metrics.values() if isinstance(metrics, dict) else metrics:
        for one in m if isinstance(m, (list, tuple)) else [m]:
            add(one)
    return found


def describe(objects: dict[str, Any]) -> list[dict[str, Any]]:
    """Where each object lives, for watch.json and the report."""
    out = []
    for name, obj in objects.items():
        try:
            source = inspect.getsourcefile(obj)
        except TypeError:
            source = None
        out.append({"name": name, "module": obj.__module__, "qualname": obj.__qualname__, "file": source,
                    "pickled": "by reference" if _installed(obj.__module__) else "by value"})
    return out


def _compile_settings(model: Any) -> tuple[dict[str, Any], list[str]]:
    """The user's ``compile`` arguments as objects to pickle (the loss and
    metrics themselves, the optimizer as its Keras config), and what had to be
    left out."""
    import cloudpickle
    import keras

    config = dict(getattr(getattr(model, "_compile_config", None), "config", None) or {})
    left_out: list[str] = []
    optimizer = config.pop("optimizer", None) or getattr(model, "optimizer", None)
    settings: dict[str, Any] = {}
    if optimizer is not None:
        settings["optimizer"] = keras.optimizers.serialize(keras.optimizers.get(optimizer))
    for key, value in config.items():
        if key in ("metrics", "weighted_metrics") and isinstance(value, (list, tuple)):
            kept = []
            for m in value:
                try:
                    cloudpickle.dumps(m)
                    kept.append(m)
                except Exception:
                    left_out.append(f"metric {getattr(m, 'name', m)!r}")
            settings[key] = kept
            continue
        try:
            cloudpickle.dumps(value)
            settings[key] = value
        except Exception as exc:
            if key == "loss":
                raise ValueError(f"the loss {value!r} cannot be pickled: {_line(exc)}") from None
            left_out.append(key)
    return settings, left_out


def save(model: Any, folder: Path) -> dict[str, Any]:
    """``model.keras`` and ``custom_objects.pkl`` in ``folder``; says what could
    not be saved and why (never raises for the model's sake)."""
    import cloudpickle

    info: dict[str, Any] = {"model": None}
    try:
        objects = custom_objects(model)
    except Exception as exc:
        objects = {}
        info["objects_problem"] = _line(exc)
    info["custom_objects"] = describe(objects)
    by_value = sorted({o.__module__ for o in objects.values() if not _installed(o.__module__)} - {"__main__"})
    registered = []
    try:
        for name in by_value:
            module = sys.modules.get(name)
            if module is not None:
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
        settings, left_out = _compile_settings(model)
        atomic_write(folder / OBJECTS_FILE, cloudpickle.dumps({"objects": objects, "compile": settings}))
        if left_out:
            info["compile_left_out"] = left_out
    except Exception as exc:
        info["model_problem"] = f"its own classes and functions cannot be pickled: {_line(exc)}"
        return info
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
    try:
        save_model(model, folder / MODEL_FILE)
    except Exception as exc:
        info["model_problem"] = _line(exc)
        return info
    info["model"] = MODEL_FILE
    return info


def save_with_data(model: Any, out: Path, ds: Any, *, data_is_split_of_validation: bool = False) -> dict[str, Any]:
    """:func:`save`, and a sample of the dataset ``ds`` within
    :data:`SAMPLE_BYTES` (``data.npz``, labels in the form the model's loss
    takes): what ``doctor --from`` starts from. Says what could not be saved."""
    info = save(model, out)
    if ds is not None:
        import numpy as np

        from .data import input_arrays, map_inputs

        arrays: dict[str, Any] = {}
        n_val = len(ds.y_val)
        for split, x, y in (("train", ds.x_train, ds.y_train), ("val", ds.x_val, ds.y_val)):
            rows = len(y)
            size = sum(a.nbytes for a in input_arrays(x)) + y.nbytes
            keep = np.arange(rows) if size <= SAMPLE_BYTES // 2 else np.random.default_rng(0).permutation(rows)[: max(2, int(rows * (SAMPLE_BYTES // 2) / size))]
            xs = map_inputs(x, lambda a: a[np.sort(keep)])
            if isinstance(xs, dict):
                arrays.update({f"x_{split}__{k}": _storable(v) for k, v in xs.items()})
            elif isinstance(xs, tuple):
                arrays.update({f"x_{split}__{i}": _storable(v) for i, v in enumerate(xs)})
            else:
                arrays[f"x_{split}"] = _storable(xs)
            labels = y[np.sort(keep)]  # in the form the user's loss takes (one-hot stays one-hot)
            arrays[f"y_{split}"] = np.asarray(ds.targets(labels, ds.label_format)) if ds.label_format == "one_hot" else labels
        save_arrays(out / DATA_FILE, arrays)
        info["data"] = DATA_FILE
        info["data_is_split_of_validation"] = data_is_split_of_validation
        info["rows"] = {"train": int(len(arrays["y_train"])), "val": int(len(arrays["y_val"])), "val_given": n_val}
    return info


def _storable(a: Any) -> Any:
    """Text as fixed-width unicode (an .npz that needs no pickle)."""
    return a.astype(str) if a.dtype.kind == "O" else a


#: The marker of a folder whose pickled code remedysweep itself wrote (Watch's run
#: folder, or the folder ``diagnose_model`` saves a live model to).
CODE_FOLDER_KIND = "watch"


def code_beside(path: Path) -> Path | None:
    """The pickled custom objects to load with ``path``, or ``None``: only a
    regular file remedysweep wrote beside a ``model.keras`` that is itself no
    symlink, in a folder whose marker says remedysweep saved code there. A
    pickle beside any other ``.keras`` file (a download, a link into someone's
    folder) is never run."""
    from remedysweep.files import folder_kind

    path = Path(path)
    pkl = path.with_name(OBJECTS_FILE)
    if path.is_symlink() or pkl.is_symlink() or not pkl.is_file():
        return None
    if folder_kind(path.parent) != CODE_FOLDER_KIND:
        return None
    return pkl


def load(path: Path) -> Any:
    """The saved model, compiled as the user compiled it. Its own classes and
    functions load only from a folder remedysweep saved them to
    (:func:`code_beside`); any other ``.keras`` file loads with Keras's safe mode
    on. Raises what Keras raises."""
    import keras

    saved: dict[str, Any] = {}
    pkl = code_beside(Path(path))
    if pkl is not None:
        saved = load_pickle(pkl, OBJECTS_LIMIT)
    objects = saved.get("objects", {})
    settings = dict(saved.get("compile") or {})
    safe = pkl is None  # Lambda layers and the user's own code load only from a folder that carries their code
    with keras.saving.custom_object_scope(objects):
        model = keras.saving.load_model(path, custom_objects=objects, compile=not settings, safe_mode=safe)
        if settings:
            if "optimizer" in settings:
                settings["optimizer"] = keras.optimizers.deserialize(settings["optimizer"])
            model.compile(**settings)
    return model


def reinitialise(model: Any) -> Any:
    """Fresh weights, in place, from each layer's own initializers (drawn from
    the seeded global generator); state without an initializer (adapted
    preprocessing layers, custom weights) stays as saved. The optimizer is a
    fresh one with the same settings; loss and metrics are the user's."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        for owner in (layer, getattr(layer, "cell", None)):
            if owner is not None:
                _reinit_owner(owner)
    config = dict(getattr(getattr(model, "_compile_config", None), "config", None) or {})
    if config and getattr(model, "optimizer", None) is not None:
        config["optimizer"] = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
        model.compile(**config)
    return model


#: Initializer attributes whose weight has another name.
_WEIGHT_OF = {"recurrent_initializer": "recurrent_kernel", "embeddings_initializer": "embeddings"}


def _reinit_owner(owner: Any) -> None:
    import keras

    for attr, init in list(vars(owner).items()):
        if not attr.endswith("_initializer") or init is None or not callable(init):
            continue
        weight = _WEIGHT_OF.get(attr, attr[: -len("_initializer")])
        try:
            var = getattr(owner, weight, None)
        except Exception:
            continue
        if not isinstance(var, keras.Variable):
            continue
        shape = tuple(var.shape)
        if weight == "bias" and getattr(owner, "unit_forget_bias", False) and shape and shape[0] % 4 == 0:
            units = shape[0] // 4  # an LSTM's forget gate starts at one
            value = keras.ops.concatenate([init((units,)), keras.ops.ones((units,)), init((units * 2,))])
        else:
            value = init(shape, dtype=var.dtype)
        var.assign(value)


def _line(exc: BaseException) -> str:
    from remedysweep.errors import one_line

    return one_line(exc)
