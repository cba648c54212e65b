"""A local plugin whose values cause each kind of fault a run can have."""

import os
import signal

from remedysweep.remedies import Categorical, Remedy


class Fault(Remedy):
    """``raise``: the model transform raises. ``nan_weights``: weights become NaN at the
    start of epoch 2. ``kill``: the worker process is killed (as the OS does when
    memory runs out)."""

    name = "fault"
    description = "Inject a fault: none, raise, nan_weights, kill"
    space = Categorical(["none", "raise", "nan_weights", "kill"])
    baseline = "none"
    touches = ("fit.callbacks", "model.transform")

    def transform_model(self, value, model):
        if value == "raise":
            raise RuntimeError("injected fault <in> the model")
        if value == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        return model

    def configure_fit(self, value, fit):
        if value == "nan_weights":
            fit.set("callbacks", (*fit.callbacks, _poison), by=self.name)


def _poison(built):
    import keras
    import numpy as np

    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                w = self.model.get_layer("dense_1").kernel
                w.assign(np.full(w.shape, np.nan, dtype="float32"))

    return Poison()
