"""A local plugin whose one suggested change makes every run diverge: its
weights turn NaN after the first epoch (what a too-high learning rate does,
made certain)."""

import numpy as np

from remedysweep.remedies import Categorical, Remedy


class Poison(Remedy):
    name = "poison"
    description = "Turn the weights NaN after the first epoch: none, nan"
    space = Categorical(["none", "nan"])
    baseline = "none"
    touches = ("fit.callbacks",)
    invasiveness = 0  # the least invasive change there is: tried first

    def suggest(self, symptoms, facts):
        return ["nan"]

    def configure_fit(self, value, fit):
        if value == "nan":
            fit.set("callbacks", (*fit.callbacks, _poison), by=self.name)


def _poison(built):
    import keras

    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for w in self.model.trainable_weights:
                    w.assign(np.full(w.shape, np.nan, dtype=w.dtype))

    return Poison()
