"""Our input transformations as Adversarial Robustness Toolbox (ART) preprocessors.

ART applies a `Preprocessor` before the classifier in `predict` and calls its
`estimate_gradient` on the way back, so any ART attack given a classifier wrapped with one of
these attacks through the defence. Pixel Deflection, JPEG and the wavelet denoiser are neither
differentiable nor deterministic: their gradient estimate is BPDA's identity (Athalye et al.
2018, §4.1); expectation over transformation stays with `PixelDeflection.eot_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from blurnet_tf.art_logging import import_art
from blurnet_tf.defences.image_denoisers import jpeg, wavelet_denoise
from blurnet_tf.defences.pixel_deflection import PixelDeflection

import_art()  # before ART's first import: its logging set-up would close the caller's handlers
from art.defences.preprocessor import Preprocessor  # noqa: E402

__all__ = ["TransformPreprocessor", "pixel_deflection_preprocessor", "jpeg_preprocessor", "wavelet_preprocessor"]


class TransformPreprocessor(Preprocessor):
    """An ART preprocessor applying `transform(images) -> images` at prediction time only.

    estimate_gradient: BPDA, the backward pass taken as the identity (the transformation keeps
    the image close to its input, which is what BPDA needs)."""

    def __init__(self, transform: Callable[[np.ndarray], np.ndarray], name: str = "transform") -> None:
        super().__init__(is_fitted=True, apply_fit=False, apply_predict=True)
        self.transform, self.name = transform, name

    def __call__(self, x: np.ndarray, y: Any = None) -> tuple[np.ndarray, Any]:
        out = np.asarray(self.transform(np.asarray(x, np.float32)), np.float32)
        if out.shape != np.shape(x):
            raise ValueError(f"{self.name} changed the batch shape {np.shape(x)} to {out.shape}")
        return out, y

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad  # BPDA identity (explicit: this is the defence's contract, not ART's default by accident)

    def __repr__(self) -> str:
        return f"TransformPreprocessor({self.name})"


def pixel_deflection_preprocessor(defence: PixelDeflection) -> TransformPreprocessor:
    """One random Pixel Deflection draw (deflection + denoiser) per prediction."""
    return TransformPreprocessor(defence.defend, f"pixel deflection K={defence.deflections} r={defence.window}")


def jpeg_preprocessor(quality: int = 75) -> TransformPreprocessor:
    return TransformPreprocessor(lambda x: jpeg(x, quality), f"JPEG q={quality}")


def wavelet_preprocessor(sigma: float = 0.04) -> TransformPreprocessor:
    return TransformPreprocessor(lambda x: wavelet_denoise(x, sigma), f"wavelet denoise sigma={sigma}")
