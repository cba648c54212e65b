"""Three ways a plugin can be broken: an entry point that does not import, an
object that is not a remedy, and a name that is already taken."""

from remedysweep.remedies import Categorical, Remedy


class NotARemedy:
    name = "not_a_remedy"


class DuplicateLoss(Remedy):
    name = "loss"
    description = "Claims the built-in loss knob's name"
    space = Categorical(["a"])
    baseline = "a"
    touches = ("compile.loss",)

    def configure_compile(self, value, compile):
        pass
