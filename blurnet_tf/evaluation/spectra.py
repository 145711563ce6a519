"""Spectra of images and feature maps (BlurNet Figs. 1, 2 and 4)."""

from __future__ import annotations

import numpy as np


def log_spectrum(maps: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|), shifted so low frequencies sit in the centre, normalised to [0, 1] per map.
    maps: [..., H, W]."""
    s = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(maps), axes=(-2, -1))))
    lo, hi = s.min(axis=(-2, -1), keepdims=True), s.max(axis=(-2, -1), keepdims=True)
    return (s - lo) / np.maximum(hi - lo, 1e-12)


def high_frequency_fraction(maps: np.ndarray, radius_fraction: float = 0.25) -> float:
    """Share of the spectral energy outside a centred disc of radius radius_fraction * size."""
    h, w = maps.shape[-2:]
    power = np.abs(np.fft.fftshift(np.fft.fft2(maps), axes=(-2, -1))) ** 2
    yy, xx = np.mgrid[:h, :w]
    outer = np.hypot(yy - h // 2, xx - w // 2) > radius_fraction * min(h, w)
    return float(power[..., outer].sum() / max(power.sum(), 1e-30))
