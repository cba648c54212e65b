"""A user's own data loader: returns ((x_train, y_train), (x_val, y_val)).
Here scikit-learn's bundled digits, one-hot labels (the loss above takes them)."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def load():
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split((x / 16.0).astype("float32"), y, test_size=0.25, random_state=0, stratify=y)
    eye = np.eye(10, dtype="float32")
    return (x_tr, eye[y_tr]), (x_va, eye[y_va])
