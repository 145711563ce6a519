"""BlurNet defences: hand-computed regulariser values, kernels against OpenCV, invariants."""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from blurnet_tf.defences import (
    BlurDepthwiseConv2D,
    blur_kernel,
    insert_blur,
    model_regulariser,
    smoothed_predict,
    tik_hf,
    tik_pseudo,
    total_variation,
)
from blurnet_tf.registry import DEFENCES, build_model


from blurnet_tf.defences.blur import linf_penalty
from blurnet_tf.defences.regularizers import pseudo_inverse_difference
from blurnet_tf.models import layer_output_model
from blurnet_tf.experiments.model_training import compile_for_training
from conftest import run_python

MAP = np.array([[1, 2, 4], [0, 3, 3], [5, 1, 2]], np.float32)


def _as_maps(*maps):
    """[H,W] arrays -> one [1,H,W,K] tensor."""
    return tf.constant(np.stack(maps, axis=-1)[None])


def test_total_variation_of_a_3x3_map_by_hand():
    # vertical |0-1|+|3-2|+|3-4| + |5-0|+|1-3|+|2-3| = 3 + 8; horizontal 1+2 + 3+0 + 4+1 = 11
    assert float(total_variation(_as_maps(MAP))) == pytest.approx(22.0)
    # mean over the K maps: a constant map adds 0
    assert float(total_variation(_as_maps(MAP, np.ones((3, 3), np.float32)))) == pytest.approx(11.0)


def test_tik_hf_with_window_3_by_hand():
    # L_avg averages the in-map neighbours: corner (0,0) -> mean(1,2,0,3) = 1.5, centre -> 21/9
    avg = np.zeros_like(MAP)
    for i in range(3):
        for j in range(3):
            avg[i, j] = MAP[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].mean()
    assert avg[0, 0] == 1.5 and avg[1, 1] == pytest.approx(21 / 9)
    expected = np.linalg.norm(MAP - avg)
    assert float(tik_hf(_as_maps(MAP), window=3)) == pytest.approx(expected, rel=1e-5)


def test_total_variation_tells_the_two_directions_apart():
    # horizontal stripes: every row constant, so only the vertical differences count (|1-0| + |0-2| per column)
    stripes = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [-1, -1, -1, -1]], np.float32)
    maps = _as_maps(stripes)
    np.testing.assert_allclose(float(total_variation(maps)), 4 * (1 + 2))
    # vertical stripes (the transpose): the same TV, now all of it horizontal
    np.testing.assert_allclose(float(total_variation(_as_maps(stripes.T))), 4 * (1 + 2))


def test_tik_hf_is_the_mean_over_maps_and_images_not_the_sum():
    flat = np.full((3, 3), 2.0, np.float32)  # a constant map has no high-frequency energy
    one = float(tik_hf(_as_maps(MAP)))
    assert float(tik_hf(_as_maps(flat))) == pytest.approx(0.0, abs=1e-5)
    assert float(tik_hf(_as_maps(MAP, flat))) == pytest.approx(one / 2, rel=1e-5)  # K = 2 maps
    two_images = tf.concat([_as_maps(MAP), _as_maps(flat)], axis=0)  # N = 2 images of one map each
    assert float(tik_hf(two_images)) == pytest.approx(one / 2, rel=1e-5)
    assert float(tik_pseudo(_as_maps(MAP, MAP))) == pytest.approx(float(tik_pseudo(_as_maps(MAP))), rel=1e-5)


def test_pseudo_inverse_operator_against_numpy():
    n = 5
    D = -np.eye(n) + np.eye(n, k=1)
    np.testing.assert_allclose(pseudo_inverse_difference(n), np.linalg.pinv(D), atol=1e-6)
    # it integrates: D^+ applied to a difference recovers the signal (up to sign convention)
    P = np.linalg.pinv(D)
    np.testing.assert_allclose(P @ (D @ np.arange(n, dtype=float)), np.arange(n), atol=1e-9)
    P3 = pseudo_inverse_difference(3)
    assert float(tik_pseudo(_as_maps(MAP), "elementwise")) == pytest.approx(np.linalg.norm(P3 * MAP), rel=1e-5)
    assert float(tik_pseudo(_as_maps(MAP), "matmul")) == pytest.approx(np.linalg.norm(P3 @ MAP), rel=1e-5)


def test_linf_penalty_by_hand():
    W = np.zeros((3, 3, 2, 1), np.float32)
    W[0, 0, 0, 0], W[1, 2, 0, 0] = -0.7, 0.2  # channel 0: max |.| = 0.7
    W[2, 2, 1, 0] = 0.4  # channel 1: 0.4
    assert float(linf_penalty(tf.constant(W))) == pytest.approx(1.1)
    layer = BlurDepthwiseConv2D(3, alpha=0.5)
    layer(tf.zeros((1, 8, 8, 2)))
    layer.kernel.assign(W)
    layer(tf.zeros((1, 8, 8, 2)))
    assert float(layer.losses[-1]) == pytest.approx(0.55)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_box_and_gaussian_kernels_match_opencv_in_the_interior(k):
    rng = np.random.default_rng(k)
    image = rng.random((20, 20, 3)).astype(np.float32)
    r = k // 2
    for init, sigma, reference in (
        ("box", None, cv2.blur(image, (k, k))),
        ("gaussian", 1.2, cv2.GaussianBlur(image, (k, k), 1.2)),
    ):
        layer = BlurDepthwiseConv2D(k, init=init, sigma=sigma, trainable=False)
        out = layer(image[None]).numpy()[0]
        np.testing.assert_allclose(out[r:-r, r:-r], reference[r:-r, r:-r], atol=1e-5)
    assert blur_kernel(k).sum() == pytest.approx(1.0)


def test_fit_loss_is_cross_entropy_plus_penalties():
    rng = np.random.default_rng(0)
    x = rng.random((16, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 18, 16)
    for defence, params in (("tv", {"alpha": 0.01}), ("conv", {"kernel_size": 5}), ("tik_hf", {})):
        model = compile_for_training(build_model(defence, **params), 1e-3, "constant", 1)
        loss = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"]
        logits = model(x, training=False)
        ce = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
        penalty = float(sum(model.losses))
        assert penalty > 0
        if defence == "tv":
            maps = layer_output_model(model)(x, training=False)
            assert penalty == pytest.approx(0.01 * float(total_variation(maps)), rel=1e-5)
        assert loss == pytest.approx(ce + penalty, rel=1e-4)


def test_insert_blur_keeps_trained_weights_bit_identical():
    model = build_model("baseline")
    model(np.zeros((1, 32, 32, 3), np.float32))
    for where in ("input", "l1"):
        blurred = insert_blur(model, where, 5)
        for layer in model.layers:
            if layer.weights:
                for a, b in zip(layer.get_weights(), blurred.get_layer(layer.name).get_weights()):
                    assert a.dtype == b.dtype and np.array_equal(a, b)
        assert len(blurred.layers) == len(model.layers) + 1
        assert not {id(v) for v in model.weights} & {id(v) for v in blurred.weights}


def test_insert_blur_uses_the_gaussian_and_its_sigma_on_the_input_and_after_the_first_layer():
    """Table I's Gaussian blur: kind and sigma must reach the inserted layer (OpenCV as reference)."""
    model = build_model("baseline")
    x = np.random.default_rng(3).random((1, 32, 32, 3)).astype(np.float32)
    model(x)
    k, sigma, r = 5, 1.7, 2
    blurred = layer_output_model(insert_blur(model, "input", k, kind="gaussian", sigma=sigma), "inserted_input_blur")
    np.testing.assert_allclose(
        blurred(x).numpy()[0, r:-r, r:-r], cv2.GaussianBlur(x[0], (k, k), sigma)[r:-r, r:-r], atol=1e-5
    )
    maps = layer_output_model(model)(x).numpy()[0]
    blurred = layer_output_model(insert_blur(model, "l1", k, kind="gaussian", sigma=sigma), "inserted_l1_blur")
    reference = np.stack([cv2.GaussianBlur(maps[..., c], (k, k), sigma) for c in range(maps.shape[-1])], axis=-1)
    np.testing.assert_allclose(blurred(x).numpy()[0, r:-r, r:-r], reference[r:-r, r:-r], atol=1e-5)


def test_a_blur_layer_rebuilt_from_its_config_keeps_its_kernel_and_its_penalty():
    """Saved models are rebuilt from get_config: a learned blur that lost alpha (or sigma) would
    train without eq. 2's penalty (or start from another kernel)."""
    layer = BlurDepthwiseConv2D(5, init="gaussian", sigma=0.8, alpha=0.3)
    again = BlurDepthwiseConv2D.from_config(layer.get_config())
    again(tf.zeros((1, 8, 8, 2)))
    g = cv2.getGaussianKernel(5, 0.8)
    np.testing.assert_allclose(again.kernel.numpy()[:, :, 0, 0], g @ g.T, atol=1e-7)
    assert float(again.losses[-1]) == pytest.approx(0.3 * float(linf_penalty(again.kernel)))


@pytest.mark.slow
def test_tv_training_lowers_first_layer_tv_on_the_victims(lisa_split, victims):
    train, _, _ = lisa_split
    tvs = {}
    for defence, params in (("baseline", {}), ("tv", {"alpha": 1e-2})):
        keras.utils.set_random_seed(0)
        model = compile_for_training(build_model(defence, **params), 1e-3, "constant", 1)
        # 1,024 images suffice (TV / baseline 0.36 there, 0.32 on all 3,655; measured), at a third of the cost
        model.fit(train.images[:1024], train.labels[:1024], batch_size=128, epochs=3, verbose=0)
        maps = layer_output_model(model)(victims, training=False)
        tvs[defence] = float(total_variation(maps))
    assert tvs["tv"] < 0.8 * tvs["baseline"], tvs


def test_smoothing_with_tiny_sigma_is_the_base_prediction(original_model, victims, lisa_split):
    _, test, _ = lisa_split
    images = np.concatenate([victims, test.images[:60]])
    base = original_model.predict(images, verbose=0).argmax(1)
    smoothed, counts = smoothed_predict(original_model, images, sigma=1e-6, n=10)
    assert np.array_equal(smoothed, base) and (counts.sum(1) == 10).all()
    # with large noise and abstention, some predictions abstain and votes still sum to n
    noisy, counts = smoothed_predict(original_model, images[:20], sigma=1.0, n=20, abstain_alpha=0.001)
    assert (counts.sum(1) == 20).all() and (noisy == -1).any()


@pytest.mark.slow
def test_every_factory_model_survives_save_and_load_in_a_fresh_process(tmp_path):
    x = np.random.default_rng(1).random((4, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for defence in DEFENCES:
        model = build_model(defence)
        expected[defence] = model.predict(x, verbose=0)
        model.save(tmp_path / f"{defence}.keras")
    script = f"""
import json, numpy as np
from blurnet_tf.registry import load_model
x = np.load(r"{tmp_path / "x.npy"}")
out = {{d: load_model(r"{tmp_path}/" + d + ".keras").predict(x, verbose=0).tolist() for d in {list(DEFENCES)!r}}}
print(json.dumps(out))
"""
    loaded = json.loads(run_python("-c", script).stdout.strip().splitlines()[-1])
    for defence in DEFENCES:
        np.testing.assert_array_equal(np.asarray(loaded[defence], np.float32), expected[defence])


def test_model_regulariser_exposes_the_training_penalty():
    fn, alpha = model_regulariser(build_model("tik_hf"))
    assert alpha == 1e-4 and float(fn(_as_maps(MAP))) == pytest.approx(float(tik_hf(_as_maps(MAP))))
    assert model_regulariser(build_model("baseline")) is None
    with pytest.raises(ValueError, match="does not take"):
        build_model("tv", kernel_size=3)
