"""Pixel Deflection (Prakash et al., CVPR 2018) for our classifiers, with a BPDA + EOT hook.

The defence pre-processes the image and leaves the classifier untouched:
  1. robust activation map R: class activation maps of the top-k classes, weighted 1/2^i,
     upsampled to the image and normalised to [0, 1] (paper §4.1);
  2. deflection: K times, pick a pixel uniformly; if R there is below a U(0,1) draw, replace it
     by a random pixel of the window of apothem r around it, inside the image (paper §3);
  3. denoising: YCbCr -> db1 wavelet -> soft BayesShrink thresholding (sigma) -> inverse -> RGB
     (paper §4.2; scikit-image's denoise_wavelet), or JPEG as the baseline transform.
An ensemble predicts by majority vote over n independent defences (the paper's Ens-10).

Deflection and denoising are neither differentiable nor deterministic, so an honest white-box evaluation uses
BPDA (the backward pass of the defence taken as the identity) with expectation over transformation: the differentiable
stand-in `PixelDeflection.eot_model(samples)` can take the classifier's place in any of our attacks (RP2, PGD).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf.defences.image_denoisers import jpeg, unit_images, wavelet_denoise  # noqa: F401 (the denoisers: their home before)
from blurnet_tf.defences.wrapped_classifier import classifier_of
from blurnet_tf.models.lisa_cnn import FIRST_LAYER, layer_output_model

DENOISERS = ("wavelet", "jpeg", "none")


def class_activation_maps(
    model: keras.Model, images: np.ndarray, conv_layer: str = "relu3", dense_layer: str = "logits"
) -> tuple[np.ndarray, np.ndarray]:
    """CAM of every class: M_c(y, x) = sum_k w[y, x, k, c] f_k(y, x) for last conv maps f [N, h, w, K]
    that reach the dense layer through Flatten (the LISA-CNN: 2x2x128x18), or through global average
    pooling (w[k, c] / (h w) at every position, Zhou et al.'s CAM). Returns (cams [N, h, w, C], bias [C]);
    the sum over (y, x) of cams plus bias are the logits."""
    model = classifier_of(model)
    features = layer_output_model(model, conv_layer)(images, training=False)
    kernel, bias = model.get_layer(dense_layer).get_weights()[:2]
    _, h, w, k = features.shape
    if kernel.shape[0] == h * w * k:
        per_position = kernel.reshape(h, w, k, -1)
    elif kernel.shape[0] == k:
        per_position = np.broadcast_to(kernel / (h * w), (h, w) + kernel.shape)
    else:
        raise ValueError(
            f"{dense_layer} takes {kernel.shape[0]} inputs; {conv_layer} gives {h}x{w}x{k}: "
            "the CAM needs Flatten or global average pooling between them"
        )
    cams = tf.einsum("nhwk,hwkc->nhwc", features, tf.constant(per_position, features.dtype))
    return cams.numpy(), bias


def robust_activation_map(
    model: keras.Model, images: np.ndarray, top_k: int = 5, conv_layer: str = "relu3", dense_layer: str = "logits"
) -> np.ndarray:
    """R in [0, 1], [N, H, W]: the top-k classes' CAMs weighted 1/2^i (i = 0 for the top class),
    bilinearly upsampled to the image, min-max normalised per image."""
    cams, bias = class_activation_maps(model, images, conv_layer, dense_layer)
    logits = cams.sum(axis=(1, 2)) + bias
    order = np.argsort(-logits, axis=1)[:, :top_k]  # [N, k]
    weights = 0.5 ** np.arange(order.shape[1])
    picked = np.take_along_axis(cams, order[:, None, None, :], axis=3)  # [N, h, w, k]
    combined = (picked * weights).sum(axis=3, keepdims=True)
    up = tf.image.resize(combined, images.shape[1:3], method="bilinear").numpy()[..., 0]
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return ((up - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def deflect(
    images: np.ndarray, maps: np.ndarray, deflections: int, window: int, rng: np.random.Generator
) -> np.ndarray:
    """Pixel deflection of a batch [N, H, W, C] with maps [N, H, W] in [0, 1].

    Each of the K picks is deflected when map < U(0,1): the pixel takes the value of a pixel drawn uniformly from the
    (2r+1)^2 window around it, clipped to the image. All picks read the input image (so every new value is present in
    the input within the window); a pixel picked twice keeps one of its draws. At most K pixels change per image."""
    images = np.asarray(images)
    n, h, w, _ = images.shape
    ys, xs = rng.integers(0, h, (n, deflections)), rng.integers(0, w, (n, deflections))
    chosen = maps[np.arange(n)[:, None], ys, xs] < rng.random((n, deflections))
    sy = np.clip(ys + rng.integers(-window, window + 1, (n, deflections)), 0, h - 1)
    sx = np.clip(xs + rng.integers(-window, window + 1, (n, deflections)), 0, w - 1)
    idx = np.broadcast_to(np.arange(n)[:, None], ys.shape)[chosen]
    out = images.copy()
    out[idx, ys[chosen], xs[chosen]] = images[idx, sy[chosen], sx[chosen]]
    return out


@dataclasses.dataclass
class PixelDeflection:
    """The defence around a trained classifier, which it leaves untouched.

    fit: nothing to learn; predict: vote shares, as ART's predict returns scores; predict_classes: the vote.
    deflections / window / sigma default to the paper's ImageNet values; for 32x32 inputs choose them on a
    validation split (see the pixel-deflection search in the report).

    Parameters
    ----------
    classifier : keras.Model
        Images [N, H, W, C] -> logits [N, classes]; a training wrapper is replaced by its classifier.
    deflections : int
        K, the pixels picked per image (>= 0; 0: no deflection).
    window : int
        Apothem r of the window a deflected pixel takes its value from (>= 1).
    sigma : float
        Noise standard deviation the wavelet thresholding assumes (> 0).
    denoiser : {'wavelet', 'jpeg', 'none'}
        The wavelet denoiser of §4.2, JPEG (the baseline transform), or none.
    threshold_method, threshold_mode : str
        Wavelet thresholding: 'BayesShrink' or 'VisuShrink'; 'soft' or 'hard'.
    jpeg_quality : int
        JPEG quality, 1 to 100.
    denoise_backend : {'tensorflow', 'skimage'}
        Where the wavelet denoiser runs; skimage: the reference, per image.
    top_k : int
        Classes whose CAMs make the activation map (>= 1).
    use_map : bool
        False: every pick is deflected (no activation map).
    ensemble : int
        n of the Ens-n majority vote (>= 1).
    seed : int
        Seed of the defence's own random generator.
    cam_layer, dense_layer : str
        The classifier's last conv maps (the LISA-CNN's by default) and the dense layer turning them into logits.

    Raises
    ------
    ValueError
        If a setting (all keyword-only, checked when the defence is built) is unknown or out of range."""

    classifier: keras.Model
    _: dataclasses.KW_ONLY
    deflections: int = 100
    window: int = 10
    sigma: float = 0.04
    denoiser: Literal["wavelet", "jpeg", "none"] = "wavelet"
    threshold_method: Literal["BayesShrink", "VisuShrink"] = "BayesShrink"
    threshold_mode: Literal["soft", "hard"] = "soft"
    jpeg_quality: int = 75
    denoise_backend: Literal["tensorflow", "skimage"] = "tensorflow"
    top_k: int = 5
    use_map: bool = True
    ensemble: int = 1
    seed: int = 0
    cam_layer: str = "relu3"
    dense_layer: str = "logits"

    def __post_init__(self) -> None:
        for name, choices in (
            ("denoiser", DENOISERS),
            ("threshold_method", ("BayesShrink", "VisuShrink")),
            ("threshold_mode", ("soft", "hard")),
            ("denoise_backend", ("tensorflow", "skimage")),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name, low in (("deflections", 0), ("window", 1), ("top_k", 1), ("ensemble", 1), ("jpeg_quality", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.jpeg_quality > 100:
            raise ValueError(f"jpeg_quality must be at most 100, got {self.jpeg_quality}")
        if not (isinstance(self.sigma, (int, float)) and np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma!r}")
        self.classifier = classifier_of(self.classifier)
        self._rng = np.random.default_rng(self.seed)

    def _images(self, images: np.ndarray) -> np.ndarray:
        x = unit_images(images)
        wanted = tuple(self.classifier.input_shape[1:])
        if any(w is not None and w != g for w, g in zip(wanted, x.shape[1:])) or len(wanted) != 3:
            raise ValueError(f"images: the classifier takes images shaped {wanted}, got {x.shape[1:]}")
        return x

    def activation_map(self, images: np.ndarray) -> np.ndarray:
        """The deflection probability map R (deterministic: computed once per image).

        images [N, H, W, C] in [0, 1] -> R [N, H, W] in [0, 1] (zeros when use_map is False)."""
        if not self.use_map:
            return np.zeros(np.shape(images)[:3], np.float32)
        return robust_activation_map(
            self.classifier, np.asarray(images, np.float32), self.top_k, self.cam_layer, self.dense_layer
        )

    def defend(
        self, images: np.ndarray, rng: np.random.Generator | None = None, maps: np.ndarray | None = None
    ) -> np.ndarray:
        """One random draw of the defence on a batch (deflection, then the denoiser).

        images [N, H, W, C] -> [N, H, W, C] float32; rng: the draw's generator (None: the defence's own, seeded
        by `seed`); maps: activation maps [N, H, W] if already computed (None: computed here)."""
        rng = self._rng if rng is None else rng
        out = self._images(images)
        if self.deflections:
            out = deflect(out, self.activation_map(out) if maps is None else maps, self.deflections, self.window, rng)
        rgb = np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out  # grey: denoised as RGB of equal channels
        if self.denoiser == "wavelet":
            rgb = wavelet_denoise(rgb, self.sigma, self.threshold_method, self.threshold_mode, self.denoise_backend)
        elif self.denoiser == "jpeg":
            rgb = jpeg(rgb, self.jpeg_quality)
        return rgb.mean(axis=-1, keepdims=True, dtype=np.float32) if out.shape[-1] == 1 else rgb

    def predict(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Vote shares of the `ensemble` independent defences (what ART's predict returns: scores).

        images [N, H, W, C] -> [N, classes], the share of the defences voting for each class. The activation map
        is computed once; the draws go through the classifier as one batch (`batch_size` at a time)."""
        images = self._images(images)
        maps = self.activation_map(images) if self.deflections else None
        draws = np.concatenate([self.defend(images, maps=maps) for _ in range(self.ensemble)])
        classes = self.classifier.predict(draws, batch_size=batch_size, verbose=0).argmax(axis=1)
        votes = np.zeros((len(images), self.classifier.output_shape[-1]), np.int64)
        np.add.at(votes, (np.tile(np.arange(len(images)), self.ensemble), classes), 1)
        return votes / self.ensemble

    def predict_classes(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Classes by majority vote over `ensemble` independent defences (ties: lowest class).

        images [N, H, W, C] -> [N] classes; `batch_size` as in `predict`."""
        return self.predict(images, batch_size).argmax(axis=1)

    def bpda(self, x: tf.Tensor) -> tf.Tensor:
        """The defence in the forward pass, the identity in the backward pass (BPDA, Athalye et al.).

        x [N, H, W, C] float32 -> one draw of the defence on x, [N, H, W, C]; dy passes through unchanged."""

        @tf.custom_gradient
        def straight_through(t):
            y = tf.numpy_function(lambda a: self.defend(a), [t], tf.float32)

            def grad(dy, variables=None):  # the activation map reads the classifier: no gradient to it
                return (dy, [None] * len(variables)) if variables else dy

            return tf.ensure_shape(y, t.shape), grad

        return straight_through(x)

    def eot_model(self, samples: int = 8, *, feature_layer: str | None = FIRST_LAYER) -> keras.Model:
        """A differentiable stand-in for `classifier(defend(x))` for adaptive attacks (BPDA + EOT).

        A Keras model, images [N, H, W, C] -> [N, classes], that runs BPDA through `samples` fresh random defences
        per call and returns the log of the mean softmax over them (expectation over transformation of the
        predicted distribution). The classifier's `feature_layer` maps on the defended images ([samples * N, ...])
        are a layer of the same name (None: no maps), so `rp2(extra_loss=...)` reads them as it reads the bare
        model's. Not serialisable: it holds the defence, which lives outside the weights. Raises ValueError unless
        `samples` is an integer >= 1."""
        if not (isinstance(samples, (int, np.integer)) and samples >= 1):
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        x = keras.Input(self.classifier.input_shape[1:], name="images")
        defended = _DefendedCopies(self, int(samples), name="bpda_defences")(x)
        logits = self.classifier(defended, training=False)
        # The maps feed the output layer (which ignores them) so that they are a layer of this model.
        maps = (
            []
            if feature_layer is None
            else [
                keras.layers.Identity(name=feature_layer)(layer_output_model(self.classifier, feature_layer)(defended))
            ]
        )
        return keras.Model(
            x, _EotMean(int(samples), name="eot_log_mean_softmax")([logits, *maps]), name="pixel_deflection_eot"
        )


class _DefendedCopies(keras.layers.Layer):
    """[N, ...] -> [samples * N, ...]: `samples` independent draws of the defence, BPDA in the backward pass."""

    def __init__(self, defence: PixelDeflection, samples: int, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.defence, self.samples = defence, samples

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.defence.bpda(tf.concat([x] * self.samples, axis=0))

    def compute_output_shape(self, shape: tuple) -> tuple:
        return (None,) + tuple(shape[1:])


class _EotMean(keras.layers.Layer):
    """[samples * N, classes] logits -> [N, classes]: log of the mean softmax over the draws."""

    def __init__(self, samples: int, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.samples = samples

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        logp = tf.nn.log_softmax(tf.cast(inputs[0], tf.float32))  # logsumexp: exact where a mean underflows
        return tf.reduce_logsumexp(tf.reshape(logp, (self.samples, -1, logp.shape[-1])), axis=0) - np.log(self.samples)

    def compute_output_shape(self, shapes: list[tuple]) -> tuple:
        return (None, shapes[0][-1])
