"""C&W L2 against the analytic answer: for a linear classifier the smallest L2 perturbation that
crosses the decision boundary is |margin| / ||w_0 - w_1||."""

import numpy as np

from blurnet_tf.attacks.carlini_wagner import carlini_wagner_l2

from conftest import linear_classifier_case


def test_cw_finds_the_minimal_l2_perturbation_of_a_linear_classifier():
    model, x, labels, minimal = linear_classifier_case()
    adv = carlini_wagner_l2(model, x, labels, max_iterations=500, binary_search_steps=8, learning_rate=5e-3)
    assert (model(adv).numpy().argmax(axis=1) != labels).all()
    found = np.linalg.norm((adv - x).reshape(8, -1), axis=1)
    assert np.all(found >= minimal * 0.999) and np.all(found <= minimal * 1.05), (found, minimal)
