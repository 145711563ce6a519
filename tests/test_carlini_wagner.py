"""C&W L2 against the analytic answer: for a linear classifier the smallest L2 perturbation that
crosses the decision boundary is |margin| / ||w_0 - w_1||."""

import numpy as np

from blurnet_tf.attacks.carlini_wagner import carlini_wagner_l2

from conftest import linear_classifier_case


def test_cw_finds_the_minimal_l2_perturbation_of_a_linear_classifier():
    model, x, labels, minimal = linear_classifier_case()
    adv = carlini_wagner_l2(model, x, labels, steps=500, binary_search_steps=8, learning_rate=5e-3).adversarial
    assert (model(adv).numpy().argmax(axis=1) != labels).all()
    found = np.linalg.norm((adv - x).reshape(8, -1), axis=1)
    assert np.all(found >= minimal * 0.999) and np.all(found <= minimal * 1.05), (found, minimal)


def test_every_minimum_norm_attack_returns_a_success_mask_and_norms_never_a_silent_copy():
    import keras

    from blurnet_tf.attacks import AttackResult, ddn, lbfgs_attack

    model, x, labels, minimal = linear_classifier_case()
    frozen = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    frozen.layers[-1].set_weights([np.zeros((16, 2), np.float32), np.array([1.0, 0.0], np.float32)])  # always 0
    runs = {
        "cw": lambda m, y: carlini_wagner_l2(m, x, y, steps=300, binary_search_steps=6, learning_rate=5e-3),
        "ddn": lambda m, y: ddn(m, x, y, steps=200, init_norm=0.05, quantize_levels=None),
        "lbfgs": lambda m, y: lbfgs_attack(m, x, 1 - y, search_steps=8),
    }
    for name, run in runs.items():
        found = run(model, labels)
        assert isinstance(found, AttackResult) and found.success.all(), name
        np.testing.assert_allclose(
            found.norm, np.linalg.norm((found.adversarial - x).reshape(8, -1), axis=1), rtol=1e-5
        )
        assert np.all(found.norm >= minimal * 0.999), name
        failed = run(frozen, np.zeros(8, np.int64))  # a model that ignores its input cannot be attacked
        assert not failed.success.any() and not failed.norm.any(), name
        np.testing.assert_array_equal(failed.adversarial, x)  # the images, flagged as failures
