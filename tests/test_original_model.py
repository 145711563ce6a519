"""Fidelity with the original RP2 run: the TF1 weights and the optimised sticker noise."""

import numpy as np

from blurnet_tf.data import STOP, SPEED_LIMIT_45, load_mask
from blurnet_tf.data.rp2_assets import load_original_noise
from blurnet_tf.evaluation import metrics


def test_architecture_matches_cleverhans_cnn_model(original_model):
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in original_model.layers}
    assert shapes["relu1"] == (16, 16, 64) and shapes["relu2"] == (6, 6, 128)
    assert shapes["relu3"] == (2, 2, 128) and shapes["logits"] == (18,)
    assert (
        original_model.count_params()
        == 8 * 8 * 3 * 64 + 64 + 6 * 6 * 64 * 128 + 128 + 5 * 5 * 128 * 128 + 128 + 512 * 18 + 18
    )


def test_original_weights_predict_stop_on_every_victim(original_model, victims):
    assert (metrics.predict_classes(original_model, victims) == STOP).all()


def test_dropout_is_inactive_at_inference(original_model, victims):
    a = original_model(victims, training=False).numpy()
    b = original_model(victims, training=False).numpy()
    assert np.array_equal(a, b)


def test_original_sticker_noise_reproduces_the_reference_log(original_model, victims, data_dir):
    adversarial = metrics.apply_sticker(victims, load_mask(data_dir, "rectangles"), load_original_noise(data_dir))
    clean = metrics.predict_classes(original_model, victims)
    adv = metrics.predict_classes(original_model, adversarial)
    assert metrics.attack_success_rate(clean, adv) == 0.90  # log: 90% misclassified
    assert (adv == SPEED_LIMIT_45).sum() == 36
    assert abs(metrics.l2_dissimilarity(victims, adversarial) - 0.244) <= 0.001


def test_l2_dissimilarity_by_hand():
    x = np.ones((2, 2, 2, 1), np.float32)  # ||x|| = 2
    y = x.copy()
    y[0, 0, 0, 0] = 0.0  # ||x - y|| = 1 -> 0.5; second image unchanged -> 0
    assert metrics.l2_dissimilarity(x, y) == 0.25
