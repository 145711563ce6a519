"""C&W L2 against the analytic answer: for a linear classifier the smallest L2 perturbation that
crosses the decision boundary is |margin| / ||w_0 - w_1||."""

import keras
import numpy as np

from blurnet_tf.attacks.carlini_wagner import carlini_wagner_l2


def test_cw_finds_the_minimal_l2_perturbation_of_a_linear_classifier():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    w = rng.normal(size=(16, 2)).astype(np.float32)
    model.layers[-1].set_weights([w, np.zeros(2, np.float32)])
    x = (0.5 + 0.02 * rng.normal(size=(8, 4, 4, 1))).astype(np.float32)  # far from the box edges
    logits = model(x).numpy()
    labels = logits.argmax(axis=1)
    direction = w[:, 0] - w[:, 1]
    minimal = np.abs(logits[:, 0] - logits[:, 1]) / np.linalg.norm(direction)
    adv = carlini_wagner_l2(model, x, labels, max_iterations=500, binary_search_steps=8, learning_rate=5e-3)
    assert (model(adv).numpy().argmax(axis=1) != labels).all()
    found = np.linalg.norm((adv - x).reshape(8, -1), axis=1)
    assert np.all(found >= minimal * 0.999) and np.all(found <= minimal * 1.05), (found, minimal)
