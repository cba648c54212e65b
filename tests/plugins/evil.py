"""A plugin whose name-adjacent text tries to inject HTML into the report."""

from remedysweep.remedies import Categorical, Remedy


class Evil(Remedy):
    name = "evil"
    description = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    space = Categorical(["<b>bold</b>", "plain"])
    baseline = "plain"
    touches = ("fit.label_smoothing", "model.transform")

    def transform_model(self, value, model):
        if value == "<b>bold</b>":
            raise ValueError("<script>alert(3)</script> in a message")
        return model
