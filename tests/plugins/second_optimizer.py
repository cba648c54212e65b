"""A local plugin that replaces the optimizer: conflicts with the built-in knob."""

from remedysweep.remedies import Categorical, Remedy


class MyOptimizer(Remedy):
    name = "my_optimizer"
    description = "Lion-like optimizer stand-in (SGD with momentum 0.95)"
    space = Categorical(["none", "lion"])
    baseline = "none"
    touches = ("compile.optimizer",)

    def configure_compile(self, value, compile):
        if value == "lion":
            import keras

            compile.set("optimizer", lambda lr, **clip: keras.optimizers.SGD(lr, momentum=0.95, **clip), by=self.name)
