"""Pixel Deflection: deflection invariants, the denoiser, the CAM decomposition, BPDA/EOT."""

import numpy as np
import pytest
import tensorflow as tf

from blurnet_tf.defences.pixel_deflection import (
    PixelDeflection,
    class_activation_maps,
    deflect,
    robust_activation_map,
    wavelet_denoise,
)


@pytest.fixture()
def images():
    return np.random.default_rng(0).random((6, 32, 32, 3), dtype=np.float32)


def test_deflection_changes_at_most_k_pixels_each_from_its_window(images):
    k, r = 40, 3
    out = deflect(images, np.zeros(images.shape[:3]), k, r, np.random.default_rng(1))
    changed = np.argwhere(np.any(out != images, axis=-1))
    for n in range(len(images)):
        assert 0 < (changed[:, 0] == n).sum() <= k
    for n, y, x in changed:
        window = images[n, max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].reshape(-1, 3)
        assert np.any(np.all(window == out[n, y, x], axis=-1)), (n, y, x)


def test_a_map_of_ones_deflects_nothing(images):
    out = deflect(images, np.ones(images.shape[:3]), 500, 5, np.random.default_rng(2))
    np.testing.assert_array_equal(out, images)


def test_wavelet_denoiser_is_identity_at_zero_sigma_and_removes_noise():
    yy, xx = np.mgrid[:32, :32] / 31.0
    clean = np.stack([yy, xx, (yy + xx) / 2], axis=-1)[None].astype(np.float32)
    np.testing.assert_allclose(wavelet_denoise(clean, sigma=1e-6), clean, atol=1e-4)
    noisy = np.clip(clean + np.random.default_rng(3).normal(0, 0.04, clean.shape), 0, 1).astype(np.float32)
    for method, mode in (("BayesShrink", "soft"), ("VisuShrink", "soft"), ("BayesShrink", "hard")):
        denoised = wavelet_denoise(noisy, 0.04, method, mode)
        assert np.mean((denoised - clean) ** 2) < np.mean((noisy - clean) ** 2), (method, mode)


def test_cam_sums_to_the_logits(original_model, victims):
    cams, bias = class_activation_maps(original_model, victims)
    assert cams.shape == (40, 2, 2, 18)
    np.testing.assert_allclose(
        cams.sum(axis=(1, 2)) + bias, original_model(victims, training=False).numpy(), rtol=1e-4, atol=1e-4
    )
    maps = robust_activation_map(original_model, victims)
    assert maps.shape == (40, 32, 32) and maps.min() == 0.0 and np.allclose(maps.max(axis=(1, 2)), 1.0)


def test_bpda_eot_gradient_is_the_classifiers_through_an_identity_defence(original_model, victims):
    x = tf.constant(victims[:4])
    identity = PixelDeflection(original_model, deflections=0, denoiser="none").eot_model(samples=3)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = identity(x)
        ref = tf.nn.log_softmax(original_model(x, training=False))
        picked, picked_ref = ours[:, 14], ref[:, 14]
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(tape.gradient(picked, x).numpy(), tape.gradient(picked_ref, x).numpy(), atol=1e-5)
    defended = PixelDeflection(original_model, deflections=50, window=3).eot_model(samples=2)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(defended(x)[:, 14])
    grad = tape.gradient(value, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_eot_model_is_a_keras_model_whose_first_layer_maps_rp2s_adaptive_loss_reads(original_model, victims):
    import keras

    from blurnet_tf.attacks import rp2
    from blurnet_tf.defences import REGULARISERS

    x, mask = victims[:3], np.zeros((32, 32, 3), np.float32)
    mask[10:20, 10:20] = 1
    identity = PixelDeflection(original_model, deflections=0, denoiser="none").eot_model(samples=2)
    assert isinstance(identity, keras.Model) and identity.get_layer("relu1").output.shape[1:] == (16, 16, 64)
    # Through an identity defence, the adaptive term is the bare model's (the same maps, twice).
    through = rp2(identity, x, mask, [1], lam=0.002, epochs=2, extra_loss=REGULARISERS["tv"])
    bare = rp2(original_model, x, mask, [1], lam=0.002, epochs=2, extra_loss=REGULARISERS["tv"])
    np.testing.assert_allclose(through.history["extra_loss"], bare.history["extra_loss"], rtol=1e-4)
    defended = PixelDeflection(original_model, deflections=50, window=3).eot_model(samples=2)
    run = rp2(defended, x, mask, [1], lam=0.002, epochs=2, extra_loss=REGULARISERS["tv"])
    assert np.isfinite(run.history["extra_loss"]).all() and run.history["extra_loss"].min() > 0
    with pytest.raises(ValueError, match="samples"):
        PixelDeflection(original_model).eot_model(samples=0)


def test_ensemble_prediction_keeps_clean_victims(original_model, victims):
    pd = PixelDeflection(original_model, deflections=20, window=2, ensemble=3)
    assert (pd.predict_classes(victims) == 14).mean() >= 0.9


@pytest.mark.parametrize("method,mode", [("BayesShrink", "soft"), ("VisuShrink", "soft"), ("BayesShrink", "hard")])
def test_batched_tensorflow_denoiser_matches_scikit_image(images, victims, method, mode):
    batch = np.concatenate([images, victims[:6]])
    for sigma in (0.02, 0.04, 0.08):
        ours = wavelet_denoise(batch, sigma, method, mode, backend="tensorflow")
        ref = wavelet_denoise(batch, sigma, method, mode, backend="skimage")
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_settings_are_keyword_only_and_checked_when_the_defence_is_built(original_model):
    with pytest.raises(TypeError):
        PixelDeflection(original_model, 16)  # deflections by position: refused
    for bad in (
        {"deflections": -1},
        {"window": 0},
        {"sigma": float("nan")},
        {"ensemble": 0},
        {"jpeg_quality": 101},
        {"denoiser": "median"},
        {"threshold_mode": "medium"},
        {"deflections": 2.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PixelDeflection(original_model, **bad)


def test_predict_returns_vote_shares_like_art_and_predict_classes_the_vote(original_model, victims):
    pd = PixelDeflection(original_model, deflections=20, window=2, ensemble=4, seed=0)
    shares = pd.predict(victims[:5])
    assert (
        shares.shape == (5, 18) and np.allclose(shares.sum(axis=1), 1.0) and set(np.unique(shares * 4)) <= set(range(5))
    )
    again = PixelDeflection(original_model, deflections=20, window=2, ensemble=4, seed=0)
    assert (again.predict_classes(victims[:5]) == shares.argmax(axis=1)).all()  # the same seed: the same draws
