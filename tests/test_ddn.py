"""DDN against the analytic answer: for a linear classifier the smallest L2 perturbation that
crosses the decision boundary is |margin| / ||w_0 - w_1||."""

import numpy as np

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
