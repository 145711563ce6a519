"""DDN against the analytic answer: for a linear classifier the smallest L2 perturbation that
crosses the decision boundary is |margin| / ||w_0 - w_1||."""

import numpy as np
import pytest

from blurnet_tf.attacks.ddn import ddn

from conftest import linear_classifier_case


def test_ddn_finds_the_minimal_l2_perturbation_of_a_linear_classifier():
    model, x, labels, minimal = linear_classifier_case()
    adv = ddn(model, x, labels, steps=300, init_norm=0.05, quantize_levels=None).adversarial
    assert (model(adv).numpy().argmax(axis=1) != labels).all()
    found = np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)
    assert np.all(found >= minimal * 0.999) and np.all(found <= minimal * 1.05), (found, minimal)


def test_ddn_quantised_adversarials_are_on_the_grey_level_grid():
    model, x, labels, minimal = linear_classifier_case(seed=1)
    x = np.round(x * 255) / 255
    adv = ddn(model, x, labels, steps=100).adversarial
    assert np.allclose(adv * 255, np.round(adv * 255), atol=1e-3)
    fooled = model(adv).numpy().argmax(axis=1) != labels
    found = np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)
    # Rounding to 1/255 steps costs at most sqrt(16)/510 in norm.
    assert fooled.all() and np.all(found <= minimal * 1.1 + 4 / 510), (found, minimal)


def test_ddn_follows_the_tiny_gradients_of_a_saturated_softmax():
    """Logit margins of ~60 give cross-entropy gradients near 1e-26, whose squares underflow in
    float32; the minimal perturbation does not change with the scale of the weights."""
    model, x, labels, minimal = linear_classifier_case(seed=2)
    w, b = model.layers[-1].get_weights()
    margins = np.abs(np.diff(model(x).numpy(), axis=1)).ravel()
    model.layers[-1].set_weights([w * 60 / margins.min(), b])
    adv = ddn(model, x, labels, steps=300, init_norm=0.05, quantize_levels=None).adversarial
    found = np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)
    assert (model(adv).numpy().argmax(axis=1) != labels).all()
    assert np.all(found <= minimal * 1.05), (found, minimal)


def test_batch_size_gives_each_image_the_result_it_gets_in_one_batch():
    """Issue 42: DDN and C&W in chunks of 3 (with a bar on a terminal) give each of 7 images what one batch
    gives it: each image's attack reads only its own logits."""
    from blurnet_tf.attacks import carlini_wagner_l2
    from test_autoattack import linear_case

    model, x, labels, _ = linear_case(classes=3, n=7, seed=1)
    for attack, settings in ((ddn, dict(steps=20)), (carlini_wagner_l2, dict(steps=20, binary_search_steps=2))):
        whole = attack(model, x, labels, **settings)
        chunked = attack(model, x, labels, batch_size=3, **settings)
        np.testing.assert_array_equal(chunked.success, whole.success)
        np.testing.assert_allclose(chunked.adversarial, whole.adversarial, atol=1e-6)
        np.testing.assert_allclose(chunked.norm, whole.norm, atol=1e-5)
    with pytest.raises(ValueError, match="^batch_size: expected an integer >= 1 or None, got 0"):
        ddn(model, x, labels, batch_size=0)
