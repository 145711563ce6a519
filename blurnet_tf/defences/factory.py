"""build_model(defence, **params): every Table II model from one place."""

from blurnet_tf.models.lisa_cnn import cnn_model

DEFENCES = ("baseline",)


def build_model(defence="baseline", **params):
    if defence == "baseline":
        if params:
            raise ValueError(f"baseline takes no parameters, got {sorted(params)}")
        return cnn_model()
    raise ValueError(f"unknown defence {defence!r}; choose from {', '.join(DEFENCES)}")
