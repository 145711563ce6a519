"""Pixel Deflection (Prakash et al., CVPR 2018) for our classifiers, with a BPDA + EOT hook.

The defence pre-processes the image and leaves the classifier untouched:
  1. robust activation map R: class activation maps of the top-k classes, weighted 1/2^i,
     upsampled to the image and normalised to [0, 1] (paper §4.1);
  2. deflection: K times, pick a pixel uniformly; if R there is below a U(0,1) draw, replace it
     by a random pixel of the window of apothem r around it, inside the image (paper §3);
  3. denoising: YCbCr -> db1 wavelet -> soft BayesShrink thresholding (sigma) -> inverse -> RGB
     (paper §4.2; scikit-image's denoise_wavelet), or JPEG as the baseline transform.
An ensemble predicts by majority vote over n independent defences (the paper's Ens-10).

Deflection and denoising are neither differentiable nor deterministic, so an honest white-box
evaluation uses BPDA (the backward pass of the defence taken as the identity) with expectation
over transformation: `PixelDeflection.eot_model(m)` is a differentiable stand-in that any of our
attacks (RP2, PGD) can take in place of the classifier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import keras
import numpy as np
import tensorflow as tf
from skimage.restoration import denoise_wavelet

from blurnet_tf.defences.wrapped_classifier import classifier_of
from blurnet_tf.models.lisa_cnn import layer_output_model

DENOISERS = ("wavelet", "jpeg", "none")


def class_activation_maps(model: keras.Model, images: np.ndarray, conv_layer: str = "relu3",
                          dense_layer: str = "logits") -> tuple[np.ndarray, np.ndarray]:
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
        raise ValueError(f"{dense_layer} takes {kernel.shape[0]} inputs; {conv_layer} gives {h}x{w}x{k}: "
                         "the CAM needs Flatten or global average pooling between them")
    cams = tf.einsum("nhwk,hwkc->nhwc", features, tf.constant(per_position, features.dtype))
    return cams.numpy(), bias


def robust_activation_map(model: keras.Model, images: np.ndarray, top_k: int = 5, conv_layer: str = "relu3",
                          dense_layer: str = "logits") -> np.ndarray:
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


def deflect(images: np.ndarray, maps: np.ndarray, deflections: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel deflection of a batch [N, H, W, C] with maps [N, H, W] in [0, 1].

    Each of the K picks is deflected when map < U(0,1): the pixel takes the value of a pixel
    drawn uniformly from the (2r+1)^2 window around it, clipped to the image. All picks read the
    input image (so every new value is present in the input within the window); a pixel picked
    twice keeps one of its draws. At most K pixels change per image.
    """
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


def wavelet_denoise(images: np.ndarray, sigma: float = 0.04, method: str = "BayesShrink", mode: str = "soft",
                    backend: str = "tensorflow") -> np.ndarray:
    """The paper's denoiser: YCbCr, db1 (Haar) wavelet, thresholding, back to RGB, clipped to [0, 1].

    backend='skimage' calls scikit-image's denoise_wavelet per image (the reference);
    'tensorflow' is the same computation batched (tests: equal within 1e-4), several times faster.
    """
    if backend == "skimage":
        return np.stack([np.clip(denoise_wavelet(im, sigma=sigma, wavelet="db1", mode=mode, method=method,
                                                 convert2ycbcr=True, rescale_sigma=True, channel_axis=-1), 0, 1)
                         for im in np.asarray(images, np.float64)]).astype(np.float32)
    if backend != "tensorflow":
        raise ValueError(f"backend must be tensorflow or skimage, got {backend!r}")
    return np.clip(_haar_denoise(tf.constant(images, tf.float64), sigma, method, mode).numpy(), 0, 1).astype(np.float32)


# scikit-image's RGB -> YCbCr matrix and offsets (ITU-R BT.601, RGB in [0, 1]).
_YCBCR = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def _haar_step(x):
    """One orthonormal 2-D Haar level of [N, H, W, C]: (approximation, [three detail bands])."""
    n, h, w, c = x.shape
    q = tf.reshape(x, (n, h // 2, 2, w // 2, 2, c))
    x00, x01, x10, x11 = q[:, :, 0, :, 0], q[:, :, 0, :, 1], q[:, :, 1, :, 0], q[:, :, 1, :, 1]
    return ((x00 + x01 + x10 + x11) / 2,
            [(x00 - x01 + x10 - x11) / 2, (x00 + x01 - x10 - x11) / 2, (x00 - x01 - x10 + x11) / 2])


def _haar_inverse(a, details):
    h, v, d = details
    x00, x01 = (a + h + v + d) / 2, (a - h + v - d) / 2
    x10, x11 = (a + h - v - d) / 2, (a - h - v + d) / 2
    top, bottom = tf.stack([x00, x01], axis=3), tf.stack([x10, x11], axis=3)  # [N, h, w, 2, C]
    q = tf.stack([top, bottom], axis=2)  # [N, h, 2, w, 2, C]
    n, hh, _, ww, _, c = q.shape
    return tf.reshape(q, (n, hh * 2, ww * 2, c))


def _haar_denoise(rgb, sigma, method, mode):
    """denoise_wavelet(convert2ycbcr=True, wavelet='db1') for a batch, following scikit-image:
    per-channel min-max normalisation, sigma carried into YCbCr and the normalised range, levels
    = max(log2(size) - 3, 1), one BayesShrink threshold per band (or VisuShrink's universal one)."""
    n, h, w, _ = rgb.shape
    ycc = tf.einsum("nhwc,kc->nhwk", rgb, tf.constant(_YCBCR)) + _YCBCR_OFFSET
    lo = tf.reduce_min(ycc, axis=(1, 2), keepdims=True)
    scale = tf.reduce_max(ycc, axis=(1, 2), keepdims=True) - lo
    safe = tf.where(scale > 0, scale, tf.ones_like(scale))
    x = (ycc - lo) / safe
    sigma_ycc = np.sqrt((_YCBCR ** 2 * sigma ** 2).sum(axis=1))  # [3]
    var = tf.square(sigma_ycc / safe)  # [N, 1, 1, 3]
    levels = max(int(np.log2(min(h, w))) - 3, 1)
    bands = []
    for _ in range(levels):
        x, details = _haar_step(x)
        bands.append(details)
    eps = np.finfo(np.float64).eps
    visu = tf.sqrt(var) * np.sqrt(2 * np.log(h * w))
    for details in reversed(bands):
        kept = []
        for band in details:
            if method == "BayesShrink":
                dvar = tf.reduce_mean(tf.square(band), axis=(1, 2), keepdims=True)
                t = var / tf.sqrt(tf.maximum(dvar - var, eps))
            elif method == "VisuShrink":
                t = visu
            else:
                raise ValueError(f"method must be BayesShrink or VisuShrink, got {method!r}")
            if mode == "soft":
                kept.append(tf.sign(band) * tf.nn.relu(tf.abs(band) - t))
            elif mode == "hard":
                kept.append(tf.where(tf.abs(band) >= t, band, tf.zeros_like(band)))
            else:
                raise ValueError(f"mode must be soft or hard, got {mode!r}")
        x = _haar_inverse(x, kept)
    out = tf.where(scale > 0, x * scale + lo, ycc)  # scikit-image leaves a constant channel alone
    return tf.einsum("nhwk,ck->nhwc", out - _YCBCR_OFFSET, tf.constant(np.linalg.inv(_YCBCR)))


def jpeg(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """JPEG round trip at `quality` (OpenCV), the paper's baseline transform."""
    out = []
    for im in np.asarray(images):
        bgr = (np.clip(im, 0, 1)[..., ::-1] * 255).round().astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0)
    return np.stack(out)


@dataclasses.dataclass
class PixelDeflection:
    """The defence around a trained classifier (fit: nothing to learn; predict: vote).

    deflections / window / sigma default to the paper's ImageNet values; for 32x32 inputs choose
    them on a validation split (see the pixel-deflection search in the report)."""

    classifier: keras.Model
    deflections: int = 100
    window: int = 10
    sigma: float = 0.04
    denoiser: str = "wavelet"          # wavelet | jpeg | none
    threshold_method: str = "BayesShrink"  # or VisuShrink
    threshold_mode: str = "soft"        # or hard
    jpeg_quality: int = 75
    denoise_backend: str = "tensorflow"  # or skimage (the reference, per image)
    top_k: int = 5
    use_map: bool = True                # False: every pick is deflected (no activation map)
    ensemble: int = 1                   # Ens-n majority vote
    seed: int = 0
    cam_layer: str = "relu3"            # the classifier's last conv maps (the LISA-CNN's by default)
    dense_layer: str = "logits"         # the dense layer that turns them into logits

    def __post_init__(self) -> None:
        if self.denoiser not in DENOISERS:
            raise ValueError(f"denoiser must be one of {DENOISERS}, got {self.denoiser!r}")
        self.classifier = classifier_of(self.classifier)
        self._rng = np.random.default_rng(self.seed)

    def activation_map(self, images: np.ndarray) -> np.ndarray:
        """The deflection probability map (deterministic: computed once per image)."""
        if not self.use_map:
            return np.zeros(np.shape(images)[:3], np.float32)
        return robust_activation_map(self.classifier, np.asarray(images, np.float32), self.top_k,
                                      self.cam_layer, self.dense_layer)

    def defend(self, images: np.ndarray, rng: np.random.Generator | None = None, maps: np.ndarray | None = None) -> np.ndarray:
        """One random draw of the defence on a batch (deflection, then the denoiser)."""
        rng = self._rng if rng is None else rng
        out = np.asarray(images, np.float32)
        if self.deflections:
            out = deflect(out, self.activation_map(out) if maps is None else maps, self.deflections, self.window, rng)
        if self.denoiser == "wavelet":
            out = wavelet_denoise(out, self.sigma, self.threshold_method, self.threshold_mode, self.denoise_backend)
        elif self.denoiser == "jpeg":
            out = jpeg(out, self.jpeg_quality)
        return out

    def predict(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Classes by majority vote over `ensemble` independent defences (ties: lowest class).
        The activation map is computed once; the draws go through the classifier as one batch."""
        images = np.asarray(images, np.float32)
        maps = self.activation_map(images) if self.deflections else None
        draws = np.concatenate([self.defend(images, maps=maps) for _ in range(self.ensemble)])
        classes = self.classifier.predict(draws, batch_size=batch_size, verbose=0).argmax(axis=1)
        votes = np.zeros((len(images), self.classifier.output_shape[-1]), np.int64)
        np.add.at(votes, (np.tile(np.arange(len(images)), self.ensemble), classes), 1)
        return votes.argmax(axis=1)

    def bpda(self, x: tf.Tensor) -> tf.Tensor:
        """The defence in the forward pass, the identity in the backward pass (Athalye et al.)."""

        @tf.custom_gradient
        def straight_through(t):
            y = tf.numpy_function(lambda a: self.defend(a), [t], tf.float32)

            def grad(dy, variables=None):  # the activation map reads the classifier: no gradient to it
                return (dy, [None] * len(variables)) if variables else dy

            return tf.ensure_shape(y, t.shape), grad

        return straight_through(x)

    def eot_model(self, samples: int = 8) -> Callable[..., tf.Tensor]:
        """A differentiable stand-in for `classifier(defend(x))` for adaptive attacks: BPDA through
        `samples` fresh random defences per call, returning log of the mean softmax over them
        (expectation over transformation of the predicted distribution). Callable on a batch."""
        classifier = self.classifier

        def model(x, training=False):
            x = tf.convert_to_tensor(x, tf.float32)
            tiled = tf.concat([x] * samples, axis=0)
            probs = tf.nn.softmax(classifier(self.bpda(tiled), training=False))
            mean = tf.reduce_mean(tf.reshape(probs, (samples, -1, probs.shape[-1])), axis=0)
            return tf.math.log(mean + 1e-12)

        return model
