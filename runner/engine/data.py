"""Data: a :class:`Dataset` of inputs and integer labels, and the built-in sets.

Inputs may be one array, a tuple (list) of arrays, or a dict of arrays keyed by
the model's input names (several inputs). Labels are kept as integers, with the
format the user gave them (``int``, ``one_hot`` or ``binary``) so that the
user's own loss gets them as it expects.

The built-in sets are offline and deterministic (data seed 0); a run's seed
changes its initial weights and its data order, never the data.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

DATA_SEED = 0
Inputs = Any  # np.ndarray | tuple[np.ndarray, ...] | dict[str, np.ndarray]


def map_inputs(x: Inputs, fn: Callable[[np.ndarray], Any]) -> Any:
    """Apply ``fn`` to every input array, keeping the structure."""
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return tuple(fn(v) for v in x)
    return fn(x)


def input_arrays(x: Inputs) -> list[np.ndarray]:
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (tuple, list)):
        return list(x)
    return [x]


def n_samples(x: Inputs) -> int:
    return len(input_arrays(x)[0])


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which run ``seed`` sees the training samples in ``epoch``
    (0-based). Every trainer uses this, so a run sees the same batches whichever
    path trains it."""
    return np.random.default_rng([seed, epoch, 7]).permutation(n).astype("int32")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: Inputs
    y_train: np.ndarray  # integer labels
    x_val: Inputs
    y_val: np.ndarray
    n_classes: int
    label_format: str = "int"  # the format the base model's loss takes: int, one_hot or binary
    vocab_size: int = 0  # token data only
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> Any:
        return map_inputs(self.x_train, lambda a: tuple(a.shape[1:]))

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def chance(self) -> float:
        """The majority-class rate of the validation labels (1/N when balanced)."""
        counts = np.bincount(self.y_val, minlength=self.n_classes)
        return float(counts.max() / max(1, counts.sum()))

    def probe_indices(self, size: int) -> np.ndarray:
        """A fixed slice of the validation set the diagnostics are computed on."""
        return np.random.default_rng(DATA_SEED).permutation(len(self.y_val))[:size]

    def probe_batch(self, size: int) -> tuple[Inputs, np.ndarray]:
        idx = self.probe_indices(size)
        return map_inputs(self.x_val, lambda a: a[idx]), self.y_val[idx]

    def input_facts(self) -> dict[str, float]:
        """Scale of the float inputs: mean and max of |x| over the training data."""
        floats = [a for a in input_arrays(self.x_train) if a.dtype.kind == "f"]
        if not floats:
            return {}
        return {
            "input_abs_mean": float(np.mean([np.mean(np.abs(a)) for a in floats])),
            "input_abs_max": float(max(np.max(np.abs(a)) for a in floats)),
        }

    def scaled(self, kind: str) -> "Dataset":
        """Float inputs standardized (``standardize``) or scaled to [0, 1]
        (``minmax``) per feature, from the training data, or multiplied by a
        factor (``times_255``); integer inputs kept."""

        def stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | Any:
            if a.dtype.kind != "f":
                return None
            if kind.startswith("times_"):
                return np.float32(0.0), np.float32(1.0 / float(kind[len("times_"):]))
            if kind == "standardize":
                return a.mean(axis=0), a.std(axis=0) + 1e-7
            low = a.min(axis=0)
            return low, (a.max(axis=0) - low) + 1e-7

        train = input_arrays(self.x_train)
        params = [stats(a) for a in train]

        def apply(x: Inputs) -> Inputs:
            arrays = input_arrays(x)
            out = [a if p is None else ((a - p[0]) / p[1]).astype("float32") for a, p in zip(arrays, params)]
            if isinstance(x, dict):
                return dict(zip(x.keys(), out))
            if isinstance(x, (tuple, list)):
                return tuple(out)
            return out[0]

        return replace(self, x_train=apply(self.x_train), x_val=apply(self.x_val))

    def targets(self, y: np.ndarray, fmt: str, smoothing: float = 0.0) -> np.ndarray:
        """Labels in a format a loss takes: ``one_hot`` (smoothed), ``int``, or
        ``binary`` (``[n, 1]`` floats, smoothed towards 0.5)."""
        if fmt == "binary":
            t = y.astype("float32")[:, None]
            return t * (1.0 - smoothing) + 0.5 * smoothing if smoothing else t
        if fmt == "int":
            return y.astype("int32")
        out = np.eye(self.n_classes, dtype="float32")[y]
        return out * (1.0 - smoothing) + smoothing / self.n_classes if smoothing else out

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in input_arrays(self.x_train) + input_arrays(self.x_val))


def _split(x: np.ndarray, y: np.ndarray, fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(x, y, test_size=fraction, random_state=DATA_SEED, stratify=y))


def digits(spec: Any) -> Dataset:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1]; 10 classes."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = _split((x / 16.0).astype("float32"), y.astype("int32"), spec.validation_fraction)
    return Dataset("digits", x_tr, y_tr, x_va, y_va, 10, "one_hot")


def blobs(spec: Any) -> Dataset:
    """Gaussian clusters, one per class, standardised features."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=spec.n_samples, centers=spec.n_classes, n_features=spec.n_features,
                      cluster_std=spec.cluster_std, random_state=DATA_SEED)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-8)).astype("float32")
    x_tr, x_va, y_tr, y_va = _split(x, y.astype("int32"), spec.validation_fraction)
    return Dataset("blobs", x_tr, y_tr, x_va, y_va, spec.n_classes, "one_hot")


def easy_tokens(n: int) -> list[str]:
    """N distinct three-letter tokens: 'aaa', 'bbb', ... then other letter triples."""
    letters = string.ascii_lowercase
    tokens = [c * 3 for c in letters][:n]
    i = 0
    while len(tokens) < n:
        t = letters[(i // 676) % 26] + letters[(i // 26) % 26] + letters[i % 26]
        if t not in tokens:
            tokens.append(t)
        i += 1
    return tokens


def easy_words(spec: Any) -> Dataset:
    """The write-up's sanity check: token i is class i. Inputs are the tokens'
    character ids."""
    tokens = easy_tokens(spec.n_classes)
    ids = np.array([[ord(c) - ord("a") + 1 for c in t] for t in tokens], dtype="int32")
    y = np.repeat(np.arange(spec.n_classes, dtype="int32"), spec.samples_per_class)
    x_tr, x_va, y_tr, y_va = _split(ids[y], y, spec.validation_fraction)
    return Dataset("easy_words", x_tr, y_tr, x_va, y_va, spec.n_classes, "one_hot", vocab_size=27)


BUILTIN = {"digits": digits, "blobs": blobs, "easy_words": easy_words}


def easy_version(data: Dataset, per_class: int = 16) -> Dataset:
    """The sanity check's data for any model: one fixed random input pattern per
    class, shaped like the real inputs (integer inputs stay integers in their
    range; text inputs take one training sample of each class), ``per_class``
    samples each, the same for validation. Float patterns get a little noise per
    sample (a tenth of the inputs' spread), so that batch statistics are not
    degenerate."""
    rng = np.random.default_rng(DATA_SEED)
    y = np.repeat(np.arange(data.n_classes, dtype="int32"), per_class)
    first = [int(np.flatnonzero(data.y_train == c)[0]) if np.any(data.y_train == c) else 0 for c in range(data.n_classes)]

    def samples(a: np.ndarray) -> np.ndarray:
        shape = (data.n_classes, *a.shape[1:])
        if a.dtype.kind in "OUS":
            return a[first][y]
        if a.dtype.kind in "iu":
            high = max(2, int(a.max()) + 1)
            return rng.integers(0, high, size=shape).astype(a.dtype)[y]
        scale = float(np.std(a)) or 1.0
        centre = float(np.mean(a))
        patterns = centre + rng.standard_normal(shape) * scale
        return (patterns[y] + rng.standard_normal((len(y), *a.shape[1:])) * 0.1 * scale).astype("float32")

    x = map_inputs(data.x_train, samples)
    return replace(data, name=f"easy version of {data.name}", x_train=x, y_train=y, x_val=x, y_val=y)
