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

import dataclasses

import cv2
import keras
import numpy as np
import tensorflow as tf
from skimage.restoration import denoise_wavelet

from blurnet_tf.defences.factory import classifier_of
from blurnet_tf.models.lisa_cnn import layer_output_model

DENOISERS = ("wavelet", "jpeg", "none")


def class_activation_maps(model, images, conv_layer="relu3", dense_layer="logits"):
    """CAM of every class: M_c(y, x) = sum_k w[y, x, k, c] f_k(y, x), for a classifier whose last
    conv maps f [N, h, w, K] go through Flatten into the dense layer (the LISA-CNN: 2x2x128x18).
    Returns (cams [N, h, w, C], bias [C]); sum over (y, x) of cams plus bias are the logits."""
    model = classifier_of(model)
    features = layer_output_model(model, conv_layer)(images, training=False)
    kernel, bias = model.get_layer(dense_layer).get_weights()
    _, h, w, k = features.shape
    if kernel.shape[0] != h * w * k:
        raise ValueError(f"{dense_layer} takes {kernel.shape[0]} inputs; {conv_layer} gives {h}x{w}x{k}: "
                         "the CAM needs Flatten between them")
    cams = tf.einsum("nhwk,hwkc->nhwc", features, kernel.reshape(h, w, k, -1))
    return cams.numpy(), bias


def robust_activation_map(model, images, top_k=5):
    """R in [0, 1], [N, H, W]: the top-k classes' CAMs weighted 1/2^i (i = 0 for the top class),
    bilinearly upsampled to the image, min-max normalised per image."""
    cams, bias = class_activation_maps(model, images)
    logits = cams.sum(axis=(1, 2)) + bias
    order = np.argsort(-logits, axis=1)[:, :top_k]  # [N, k]
    weights = 0.5 ** np.arange(order.shape[1])
    picked = np.take_along_axis(cams, order[:, None, None, :], axis=3)  # [N, h, w, k]
    combined = (picked * weights).sum(axis=3, keepdims=True)
    up = tf.image.resize(combined, images.shape[1:3], method="bilinear").numpy()[..., 0]
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return ((up - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def deflect(images, maps, deflections, window, rng):
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


def wavelet_denoise(images, sigma=0.04, method="BayesShrink", mode="soft"):
    """The paper's denoiser per image: YCbCr, db1 wavelet, thresholding, back to RGB, in [0, 1]."""
    return np.stack([np.clip(denoise_wavelet(im, sigma=sigma, wavelet="db1", mode=mode, method=method,
                                             convert2ycbcr=True, rescale_sigma=True, channel_axis=-1), 0, 1)
                     for im in np.asarray(images, np.float64)]).astype(np.float32)


def jpeg(images, quality=75):
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
    top_k: int = 5
    use_map: bool = True                # False: every pick is deflected (no activation map)
    ensemble: int = 1                   # Ens-n majority vote
    seed: int = 0

    def __post_init__(self):
        if self.denoiser not in DENOISERS:
            raise ValueError(f"denoiser must be one of {DENOISERS}, got {self.denoiser!r}")
        self.classifier = classifier_of(self.classifier)
        self._rng = np.random.default_rng(self.seed)

    def defend(self, images, rng=None):
        """One random draw of the defence on a batch (deflection, then the denoiser)."""
        rng = self._rng if rng is None else rng
        images = np.asarray(images, np.float32)
        out = images
        if self.deflections:
            maps = (robust_activation_map(self.classifier, images, self.top_k) if self.use_map
                    else np.zeros(images.shape[:3], np.float32))
            out = deflect(images, maps, self.deflections, self.window, rng)
        if self.denoiser == "wavelet":
            out = wavelet_denoise(out, self.sigma, self.threshold_method, self.threshold_mode)
        elif self.denoiser == "jpeg":
            out = jpeg(out, self.jpeg_quality)
        return out

    def predict(self, images, batch_size=512):
        """Classes by majority vote over `ensemble` independent defences (ties: lowest class)."""
        num_classes = self.classifier.output_shape[-1]
        votes = np.zeros((len(images), num_classes), np.int64)
        for _ in range(self.ensemble):
            logits = self.classifier.predict(self.defend(images), batch_size=batch_size, verbose=0)
            votes[np.arange(len(images)), logits.argmax(axis=1)] += 1
        return votes.argmax(axis=1)

    def bpda(self, x):
        """The defence in the forward pass, the identity in the backward pass (Athalye et al.)."""

        @tf.custom_gradient
        def straight_through(t):
            y = tf.numpy_function(lambda a: self.defend(a), [t], tf.float32)

            def grad(dy, variables=None):  # the activation map reads the classifier: no gradient to it
                return (dy, [None] * len(variables)) if variables else dy

            return tf.ensure_shape(y, t.shape), grad

        return straight_through(x)

    def eot_model(self, samples=8):
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
