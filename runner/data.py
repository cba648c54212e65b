"""Offline data sets, deterministic: nothing is downloaded.

The train/validation split and the generated data are fixed (data seed 0) so that
every run of a sweep sees the same data; a run's seed changes its initial weights
and its shuffling.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from .config import DataSpec

DATA_SEED = 0


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray  # integer labels
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    vocab_size: int = 0  # token data only

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def chance(self) -> float:
        return 1.0 / self.n_classes

    def probe_batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A fixed slice of the validation set the diagnostics are computed on."""
        idx = np.random.default_rng(DATA_SEED).permutation(len(self.x_val))[:size]
        return self.x_val[idx], self.y_val[idx]


def _split(x: np.ndarray, y: np.ndarray, fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(x, y, test_size=fraction, random_state=DATA_SEED, stratify=y))


def digits(spec: DataSpec) -> Dataset:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1]; 10 classes."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = _split((x / 16.0).astype("float32"), y.astype("int32"), spec.validation_fraction)
    return Dataset("digits", x_tr, y_tr, x_va, y_va, 10)


def blobs(spec: DataSpec) -> Dataset:
    """Gaussian clusters, one per class, standardised features."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=spec.n_samples,
        centers=spec.n_classes,
        n_features=spec.n_features,
        cluster_std=spec.cluster_std,
        random_state=DATA_SEED,
    )
    x = ((x - x.mean(0)) / (x.std(0) + 1e-8)).astype("float32")
    x_tr, x_va, y_tr, y_va = _split(x, y.astype("int32"), spec.validation_fraction)
    return Dataset("blobs", x_tr, y_tr, x_va, y_va, spec.n_classes)


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


def easy_words(spec: DataSpec) -> Dataset:
    """The sanity check: token i is class i. Inputs are the tokens' character ids."""
    tokens = easy_tokens(spec.n_classes)
    ids = np.array([[ord(c) - ord("a") + 1 for c in t] for t in tokens], dtype="int32")
    y = np.repeat(np.arange(spec.n_classes, dtype="int32"), spec.samples_per_class)
    x = ids[y]
    x_tr, x_va, y_tr, y_va = _split(x, y, spec.validation_fraction)
    return Dataset("easy_words", x_tr, y_tr, x_va, y_va, spec.n_classes, vocab_size=27)


LOADERS = {"digits": digits, "blobs": blobs, "easy_words": easy_words}


def load_dataset(spec: DataSpec) -> Dataset:
    return LOADERS[spec.dataset](spec)
