"""``remedysweep doctor``: diagnose a user's own Keras classifier and find,
within a budget of epochs, the best remedy that verifiably fixes it.

An application of the sweep engine, not a second one: the model and data go
through the same sources and checks as a sweep file's, every run is trained,
recorded and classified by the same trainers and recorder (packed where the
runs allow), the fixes are the registry's remedies (plugins included, through
their ``suggest`` and ``explore`` hooks), the runs live in an Optuna study in
the output folder, and the report is rendered by the same report code.

The steps are in :mod:`.diagnosis`, the search in :mod:`.search`, what counts as
a fix in :mod:`.evidence`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable

from remedysweep.errors import SweepError
from remedysweep.files import LOCK_FILE, atomic_write, check_folder, check_writable, claim_folder, folder_kind, mark_folder, read_json, read_limited

from remedysweep.engine.config import DOCTOR_EPOCHS, DOCTOR_SEEDS, DataSpec, ModelSpec

from .diagnosis import MAX_BUDGET, MAX_EPOCHS, MAX_SEEDS, Doctor, doctor_sweep
from .evidence import summarize

__all__ = ["Doctor", "diagnose", "diagnose_model", "diagnose_sources", "watched_sources", "doctor_sweep", "summarize", "write_doctor_report"]


def _source_specs(model: str, data: str) -> tuple[ModelSpec, DataSpec]:
    from remedysweep.engine.config import CALLABLE_PATTERN, _callable_spec

    if model.endswith((".keras", ".h5")):
        if not Path(model).is_file():
            raise SweepError("--model", None, f"{model}: file not found")
        model_spec = ModelSpec(path=str(Path(model).resolve()))
    elif CALLABLE_PATTERN.match(model):
        model_spec = ModelSpec(builder=_callable_spec("--model", None, model, Path.cwd()))  # type: ignore[arg-type]
    else:
        raise SweepError("--model", None, f"{model!r}: expected FILE.py:FUNCTION, package.module:FUNCTION or a .keras file")
    return model_spec, _data_spec(data)


def _data_spec(data: str) -> DataSpec:
    from remedysweep.engine.config import CALLABLE_PATTERN, _callable_spec

    path = Path(data)
    if data.endswith((".npz", ".csv")) or path.is_dir():
        if not path.exists():
            raise SweepError("--data", None, f"{data}: not found")
        data_spec = DataSpec(path=str(path.resolve()))
    elif CALLABLE_PATTERN.match(data):
        data_spec = DataSpec(loader=_callable_spec("--data", None, data, Path.cwd()))  # type: ignore[arg-type]
    else:
        raise SweepError("--data", None, f"{data!r}: expected FILE.py:FUNCTION, package.module:FUNCTION, an .npz, a .csv or an image folder")
    return data_spec


def check_sizes(epochs: int, seeds: int, budget: int | None) -> None:
    """Refuse sizes that cannot be meant (before anything runs); ``budget`` is
    in epochs (``None``: the default)."""
    for flag, value, low, high in (("--epochs", epochs, 1, MAX_EPOCHS), ("--seeds", seeds, 1, MAX_SEEDS), ("--budget", budget, 0, MAX_BUDGET)):
        if flag == "--budget" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SweepError(flag, None, f"must be an integer from {low} to {high}, got {value!r}")


def watched_sources(folder: str | Path, data: str | None = None) -> tuple[ModelSpec, DataSpec, dict[str, Any]]:
    """The model and data sample a :class:`remedysweep.keras.Watch` run folder
    holds (``data`` given on the command line takes the sample's place), and
    what the watch recorded. Raises :class:`SweepError` for a folder that is not
    one, or lacks what doctor needs."""
    from remedysweep.engine.saved import MODEL_FILE

    path = Path(folder)
    if not path.is_dir():
        raise SweepError("--from", None, f"{folder}: not a folder")
    if folder_kind(path) != "watch":
        raise SweepError("--from", None, f"{folder}: not a run folder remedysweep.keras.Watch wrote (no watch marker)")
    try:
        meta = json.loads(read_limited(path / "watch.json", 1 << 20).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepError(str(path / "watch.json"), None, f"cannot be read: {exc}") from None
    saved = meta.get("doctor") if isinstance(meta, dict) else None
    saved = saved if isinstance(saved, dict) else {}
    if saved.get("model") != MODEL_FILE or not (path / MODEL_FILE).is_file():
        why = saved.get("model_problem") or "no model.keras"
        raise SweepError(str(path / "watch.json"), "doctor.model", f"the model was not saved when training began ({why}); "
                                                                   "give --model FILE.py:FUNCTION instead")
    model_spec = ModelSpec(path=str((path / MODEL_FILE).resolve()))
    if data is not None:
        data_spec = _data_spec(data)
    elif saved.get("data") == "data.npz" and (path / "data.npz").is_file():
        data_spec = DataSpec(path=str((path / "data.npz").resolve()))
    elif saved.get("data") == "data.npz":
        raise SweepError(str(path / "data.npz"), None, "missing: Watch saved its data sample there, and it is gone; "
                                                       "give --data as well")
    else:
        raise SweepError(str(path / "watch.json"), "doctor.data", "no data sample: Watch was given no data=(x_val, y_val); "
                                                                  "give --data as well")
    return model_spec, data_spec, meta


def diagnose_sources(model: str | None, data: str | None, *, epochs: int | None = None, seeds: int = DOCTOR_SEEDS, budget: int | None = None,
                     plugins: tuple[str, ...] = (), echo: Callable[[str], None] = lambda s: None, out: str | Path | None = None,
                     from_: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Diagnose a model given as ``FILE.py:FUNCTION`` (or ``package.module:FUNCTION``,
    or a ``.keras`` file) on data given as ``FILE.py:FUNCTION`` (or an ``.npz``,
    a ``.csv``, an image folder); or, with ``from_``, the model and data sample
    a :class:`remedysweep.keras.Watch` run folder holds (the watched run's
    epochs unless ``epochs`` is given). Raises
    :class:`~remedysweep.errors.SweepError` for bad input; a fault inside a run
    is part of the verdict."""
    if from_ is not None:
        if model is not None:
            raise SweepError("--model", None, "give either --from FOLDER or --model, not both")
        model_spec, data_spec, meta = watched_sources(from_, data)
        watched = meta.get("watched") if isinstance(meta.get("watched"), dict) else {}
        if epochs is None:  # the epochs the watched run trained (EarlyStopping may have ended it early), else those it asked for
            fit = meta.get("fit") if isinstance(meta.get("fit"), dict) else {}
            ran = watched.get("epochs_run") or fit.get("epochs")
            epochs = min(MAX_EPOCHS, ran) if isinstance(ran, int) and not isinstance(ran, bool) and ran >= 1 else DOCTOR_EPOCHS
        if watched and data is None:
            options["watched"] = {**watched, "sample_is_split_of_validation": bool((meta.get("doctor") or {}).get("data_is_split_of_validation"))}
    else:
        if model is None or data is None:
            raise SweepError("--model" if model is None else "--data", None, "required (or --from FOLDER, a folder Watch wrote)")
        model_spec, data_spec = _source_specs(model, data)
    epochs = DOCTOR_EPOCHS if epochs is None else epochs
    check_sizes(epochs, seeds, budget)
    return diagnose(model_spec, data_spec, epochs=epochs, seeds=seeds, budget=budget, plugins=plugins, echo=echo, out=out, **options)


def diagnose_model(model: Any, x: Any, y: Any = None, *, validation_data: Any = None, validation_split: float = 0.2,
                   epochs: int = DOCTOR_EPOCHS, seeds: int = DOCTOR_SEEDS, budget: int | None = None, out: str | Path | None = None,
                   echo: Callable[[str], None] = print, **options: Any) -> dict[str, Any]:
    """Doctor from a live, compiled model and arrays, as in a notebook:

        verdict = diagnose_model(model, x_train, y_train, validation_data=(x_val, y_val))

    The model is saved as it is now (its weights are re-drawn per seed from
    its initializers; adapted preprocessing keeps its state) together with its
    own classes and functions, so nothing needs registering; the arrays are
    kept within the same cap as Watch's sample. With ``out`` the report is
    written there (``doctor.html``); the verdict is returned either way."""
    import tempfile

    from remedysweep.engine.sources import dataset_from_arrays
    from remedysweep.engine.saved import save_with_data

    check_sizes(epochs, seeds, budget)
    if validation_data is None:
        from remedysweep.engine.sources import _labels, _split

        labels = _labels(y, "y", "<diagnose_model>", "y")[0]
        train, val = _split(x, labels, validation_split, "<diagnose_model>", "validation_split")
        raw = (train, val)
    else:
        raw = ((x, y), tuple(validation_data)[:2])
    ds = dataset_from_arrays("data", raw, "<diagnose_model>", "x")
    with tempfile.TemporaryDirectory(prefix="remedysweep-model-") as tmp:
        from remedysweep.engine.saved import CODE_FOLDER_KIND

        mark_folder(Path(tmp), CODE_FOLDER_KIND)  # this process saved the model's code here: it may load it again
        saved = save_with_data(model, Path(tmp), ds)
        if saved.get("model") is None:
            raise SweepError("<diagnose_model>", "model", f"the model cannot be saved to train it again: {saved.get('model_problem')}; "
                                                         "use a builder function (remedysweep doctor --model FILE.py:FUNCTION)")
        verdict = diagnose(ModelSpec(path=str(Path(tmp) / "model.keras")), DataSpec(path=str(Path(tmp) / "data.npz")),
                           epochs=epochs, seeds=seeds, budget=budget, echo=echo, out=out, **options)
        if out is not None:
            write_doctor_report(verdict, Path(out))
        else:
            verdict.pop("_doctor", None)
    return verdict


def diagnose(model: ModelSpec, data: DataSpec, *, epochs: int = DOCTOR_EPOCHS, seeds: int = DOCTOR_SEEDS, budget: int | None = None, plugins: tuple[str, ...] = (),
             echo: Callable[[str], None] = lambda s: None, out: str | Path | None = None, strategy: str = "targeted",
             pack: bool = True, watched: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every step and return the verdict (a JSON-friendly dict); with
    ``out``, the search's runs are stored there as a run folder.
    ``strategy="random"`` spends the budget on Optuna's random sampler over the
    same remedies instead of the targeted search (for comparisons);
    ``pack=False`` trains every run alone. ``watched``: what Watch saw of the
    user's own run (``doctor --from``), which the replay must reproduce."""
    check_sizes(epochs, seeds, budget)
    if out is not None:  # what `run` checks before anything trains
        check_doctor_folder(Path(out))
        check_writable(Path(out))
    if plugins:
        from remedysweep.engine.config import check_plugins

        check_plugins("--plugin", None, tuple(str(Path(p).resolve()) for p in plugins))
    doctor = Doctor(model, data, epochs=epochs, seeds=seeds, budget=budget, plugins=plugins, echo=echo,
                    out=Path(out) if out is not None else None, strategy=strategy, pack=pack, watched=watched)
    with claim_folder(Path(out), FOLDER_KIND, "doctor", legacy=_legacy_doctor_folder) if out is not None else contextlib.nullcontext():
        verdict = doctor.run()  # one doctor at a time writes a folder: a second is refused in one line
    verdict["_doctor"] = doctor
    return verdict


FOLDER_KIND = "doctor"


def _legacy_doctor_folder(folder: Path) -> bool:
    """A doctor folder of remedysweep 0.2, written before the marker."""
    try:
        data = read_json(folder / "doctor.json")
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and {"conclusion", "baseline", "sanity_check"} <= set(data)


def check_doctor_folder(out: Path) -> None:
    """``--out`` must be new, empty, or a folder doctor wrote (never a sweep's
    run folder, never the user's own files); checked before anything runs."""
    check_folder(out, FOLDER_KIND, (LOCK_FILE,), legacy=_legacy_doctor_folder)


def write_doctor_report(verdict: dict[str, Any], out: Path) -> Path:
    """doctor.json, the search's run folder (trials.csv, curves.csv) and doctor.html."""
    from remedysweep.engine.result import clean_json
    from remedysweep.reports.doctor import render_doctor

    doctor = verdict.pop("_doctor", None)
    check_doctor_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    if folder_kind(out) is None:
        mark_folder(out, FOLDER_KIND)
    if doctor is not None and getattr(doctor, "queue", None) is not None and doctor.out == out:
        from remedysweep.engine.folder import SWEEP_FILE, export

        export(doctor.queue, out)
        atomic_write(out / SWEEP_FILE, json.dumps({"fingerprint": doctor.study_sweep.fingerprint(), "sweep": doctor.study_sweep.to_dict()}, indent=2))
    atomic_write(out / "doctor.json", json.dumps(clean_json(verdict), indent=2, default=str))
    path = out / "doctor.html"
    atomic_write(path, render_doctor(verdict, out))
    return path
