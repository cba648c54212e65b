"""A local plugin that holds a worker: a run with ``hold = "wait"`` blocks at
the end of its first epoch until the file named by ``REMEDYSWEEP_TEST_RELEASE``
exists. A test that needs a worker busy when it signals or kills it uses this
instead of long training; the wait is a Python loop, so signals reach it as
they reach a run that trains."""

import os
import time

from remedysweep.remedies import Categorical, Remedy


class Hold(Remedy):
    name = "hold"
    description = "Hold the run after its first epoch until the test releases it: go, wait"
    space = Categorical(["go", "wait"])
    baseline = "go"
    touches = ("fit.callbacks",)

    def configure_fit(self, value, fit):
        if value == "wait":
            fit.set("callbacks", (*fit.callbacks, _hold), by=self.name)


def released() -> bool:
    path = os.environ.get("REMEDYSWEEP_TEST_RELEASE", "")
    return not path or os.path.exists(path)


def _hold(built):
    import keras

    class HoldOn(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if released():
                return
            flag = os.environ["REMEDYSWEEP_TEST_RELEASE"]
            with open(f"{flag}.held-{os.getpid()}", "w"):  # the test can tell that this worker is waiting here
                pass
            while not released():
                time.sleep(0.05)

    return HoldOn()
