"""The denoisers Pixel Deflection runs after deflecting (paper §4.2): soft-thresholded db1 wavelets
in YCbCr (a batched TensorFlow version checked against scikit-image's denoise_wavelet, which is
the reference and stays selectable) and the JPEG round trip the paper compares with."""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf
from skimage.restoration import denoise_wavelet


def unit_images(images: np.ndarray) -> np.ndarray:
    """images as float32, or one ValueError: grey or RGB [N, H, W, 1 or 3], finite, in [0, 1] (what the
    denoisers and the deflection assume; a 0-255 image would pass through every step silently wrong)."""
    x = np.asarray(images, np.float32)
    if x.ndim == 4 and not len(x):
        raise ValueError(f"images: expected at least one image, got an array shaped {x.shape}")
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or not np.isfinite(x).all() or x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"images: expected grey or RGB images [N, H, W, 1 or 3] of finite values in [0, 1] (divide "
            f"8-bit images by 255), got shape {x.shape}"
        )
    return x


def wavelet_denoise(
    images: np.ndarray,
    sigma: float = 0.04,
    method: str = "BayesShrink",
    mode: str = "soft",
    backend: str = "tensorflow",
) -> np.ndarray:
    """The paper's denoiser: YCbCr, db1 (Haar) wavelet, thresholding, back to RGB, clipped to [0, 1].

    backend='skimage' calls scikit-image's denoise_wavelet per image (the reference);
    'tensorflow' is the same computation batched (tests: equal within 1e-4), several times faster.
    """
    if backend == "skimage":
        return np.stack(
            [
                np.clip(
                    denoise_wavelet(
                        im,
                        sigma=sigma,
                        wavelet="db1",
                        mode=mode,
                        method=method,
                        convert2ycbcr=True,
                        rescale_sigma=True,
                        channel_axis=-1,
                    ),
                    0,
                    1,
                )
                for im in np.asarray(images, np.float64)
            ]
        ).astype(np.float32)
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
    return (
        (x00 + x01 + x10 + x11) / 2,
        [(x00 - x01 + x10 - x11) / 2, (x00 + x01 - x10 - x11) / 2, (x00 - x01 - x10 + x11) / 2],
    )


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
    sigma_ycc = np.sqrt((_YCBCR**2 * sigma**2).sum(axis=1))  # [3]
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
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise ValueError(f"images: OpenCV could not JPEG-encode an image shaped {im.shape}")
        out.append(decoded[..., ::-1].astype(np.float32) / 255.0)
    return np.stack(out)
