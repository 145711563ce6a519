"""BlurNet's trained defences on any Keras model (Raju & Lipasti §III): a learned depthwise blur, or a
feature-map regulariser α·R(F) added to the training loss (`add_loss`), placed after a named layer.

  blur        a depthwise k x k convolution initialised to a box (or Gaussian) blur and trained with the
              model under the L∞ penalty α·Σ_j max|W_j| (§III-A; the conv_k rows of Table II);
  tv          α·TV(F), the maps' anisotropic total variation (eq. 3-4);
  tik_hf      α times Tikhonov's high-frequency energy of the maps (eq. 5-6);
  tik_pseudo  α times the Tikhonov pseudo-inverse penalty (eq. 7)
(regularizers.py gives each formula; the same functions are the adaptive attack's terms).

α defaults to the paper's (paper.PAPER_CONV_ALPHA, paper.PAPER_ALPHA), chosen for the LISA-CNN's first
layer: a model of another scale needs its own (the trade-off profile sweeps it). The model is rebuilt
layer by layer (functional through keras.models.clone_model, Sequential as a new Sequential), the
original's weights copied in: the original is left untouched, and the result trains with `fit` and
survives save / load (its layers are registered Keras objects).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import keras

from blurnet_tf.defences.blur import BlurDepthwiseConv2D
from blurnet_tf.defences.regularizers import FeatureMapRegularizer
from blurnet_tf.paper import PAPER_ALPHA, PAPER_CONV_ALPHA
from blurnet_tf.ranges import is_count, is_number

BlurNetDefence = Literal["blur", "tv", "tik_hf", "tik_pseudo"]
TIK_PSEUDO_MODES = ("elementwise", "matmul")  # regularizers.tik_pseudo's
BLURNET_DEFENCES = get_args(BlurNetDefence)


def add_blurnet(
    model: keras.Model,
    defence: BlurNetDefence,
    *,
    after: str,
    alpha: float | None = None,
    kernel_size: int = 3,
    blur_kernel: str = "box",
    blur_sigma: float | None = None,
    tik_window: int = 3,
    tik_pseudo_mode: str = "elementwise",
) -> keras.Model:
    """`model` with one of BlurNet's trained defences after its layer `after` (a copy; `model` is untouched).

    Parameters
    ----------
    model : keras.Model
        A functional or Sequential Keras classifier, images [N, H, W, C] -> logits [N, classes].
    defence : BlurNetDefence
        "blur" (learned depthwise blur), "tv", "tik_hf" or "tik_pseudo" (the module docstring).
    after : str
        The name of the layer whose output [N, H, W, K] the defence reads (BlurNet: the first conv block's).
    alpha : float or None
        The penalty's weight α (finite, >= 0); None: the paper's for this defence (and kernel size).
    kernel_size : int
        The learned blur's side k (3, 5 or 7 have a paper α).
    blur_kernel : str
        The learned blur's initial kernel: "box" or "gaussian".
    blur_sigma : float or None
        The Gaussian initial kernel's standard deviation (None: OpenCV's rule from k).
    tik_window : int
        Tik_hf's high-pass window (3).
    tik_pseudo_mode : str
        Tik_pseudo's comparison, as `regularizers.tik_pseudo` takes it ("elementwise").

    Returns
    -------
    keras.Model
        The defended model, same inputs and logits, with the original's weights; train it with `fit`.

    Raises
    ------
    ValueError
        Naming the argument: `defence` unknown; `model` not a built functional or Sequential model; `after` not
        one of its layers (the message lists them), its input, not feature maps [N, H, W, K], a shared layer,
        or already defended; α negative, not finite or (for a blur without a paper α) missing; a kernel size,
        σ, window or mode out of range.
    """
    if defence not in BLURNET_DEFENCES:
        raise ValueError(f"defence: unknown {defence!r}; choose from {', '.join(BLURNET_DEFENCES)}")
    side = _tapped_side(model, after)
    if alpha is None:
        alpha = PAPER_CONV_ALPHA.get(kernel_size) if defence == "blur" else PAPER_ALPHA[defence]
        if alpha is None:
            raise ValueError(f"alpha: the paper gives none for a {kernel_size}x{kernel_size} blur; pass alpha")
    for name, value, ok, expected in (
        ("alpha", alpha, is_number(alpha) and alpha >= 0, "a finite number >= 0"),
        (
            "kernel_size",
            kernel_size,
            is_count(kernel_size) and kernel_size <= side,
            f"an integer in 1..{side} (the maps' side)",
        ),
        (
            "blur_sigma",
            blur_sigma,
            blur_sigma is None or (is_number(blur_sigma) and blur_sigma > 0),
            "a number > 0 or None",
        ),
        ("tik_window", tik_window, is_count(tik_window) and tik_window <= side, f"an integer in 1..{side}"),
        (
            "tik_pseudo_mode",
            tik_pseudo_mode,
            tik_pseudo_mode in TIK_PSEUDO_MODES,
            f"one of {', '.join(TIK_PSEUDO_MODES)}",
        ),
    ):
        if not ok:
            raise ValueError(f"{name}: expected {expected}, got {value!r}")
    alpha = float(alpha)

    def defence_layer() -> keras.layers.Layer:
        if defence == "blur":
            return BlurDepthwiseConv2D(
                kernel_size, init=blur_kernel, sigma=blur_sigma, alpha=alpha, name=f"{after}_blurnet_blur"
            )
        extras: dict[str, dict[str, Any]] = {"tik_hf": {"window": tik_window}, "tik_pseudo": {"mode": tik_pseudo_mode}}
        params = extras.get(defence, {})
        return FeatureMapRegularizer(defence, alpha, params, name=f"{after}_blurnet_{defence}")

    if isinstance(model, keras.Sequential):
        layers: list[keras.layers.Layer] = [keras.Input(model.inputs[0].shape[1:])]
        for layer in model.layers:
            layers.append(layer.__class__.from_config(layer.get_config()))
            if layer.name == after:
                layers.append(defence_layer())
        defended = keras.Sequential(layers, name=f"{model.name}_{defence}")
    else:

        def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
            out = layer(*args, **kwargs)
            return defence_layer()(out) if layer.name == after else out

        defended = keras.models.clone_model(model, call_function=call)
        defended.name = f"{model.name}_{defence}"
    for layer in model.layers:
        if layer.weights:
            defended.get_layer(layer.name).set_weights(layer.get_weights())
    return defended


def _tapped_side(model: keras.Model, after: str) -> int:
    """The side of the feature maps the layer `after` gives (the smaller of H and W), or one ValueError naming
    what is wrong with the model or the layer."""
    if not isinstance(model, keras.Model) or not _is_graph(model):
        raise ValueError(
            "model: expected a built functional or Sequential Keras model (a subclassed or unbuilt one has no "
            "graph to insert into)"
        )
    names = [layer.name for layer in model.layers]
    if after not in names:
        raise ValueError(f"after: {model.name} has no layer {after!r}; its layers are {', '.join(names)}")
    tapped = model.get_layer(after)
    shape = tuple(tapped.output.shape)
    defended = [name for name in names if name.startswith(f"{after}_blurnet_")]
    for problem in (
        isinstance(tapped, keras.layers.InputLayer) and "is the model's input; name a layer whose maps it reads",
        len(shape) != 4 and f"outputs {shape}; expected feature maps [N, H, W, K]",
        len(getattr(tapped, "_inbound_nodes", ())) > 1 and "is a shared layer (called more than once)",
        defended and f"already has a BlurNet defence ({', '.join(defended)})",
    ):
        if problem:
            raise ValueError(f"after: {after!r} {problem}")
    return max(1, min(shape[1] or 1, shape[2] or 1))


def _is_graph(model: keras.Model) -> bool:
    try:
        return bool(model.inputs)  # a subclassed or unbuilt model has none (or raises)
    except (AttributeError, ValueError):
        return False
