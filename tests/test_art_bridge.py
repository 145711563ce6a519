"""The ART bridge and the optimisation attacks against hand-computed answers on linear
classifiers, and our C&W against ART's on the original LISA-CNN."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from blurnet_tf.attacks.art_attacks import art_classifier, deepfool, jsma, random_targets
from blurnet_tf.attacks.carlini_wagner import carlini_wagner_l2
from blurnet_tf.attacks.lbfgs import lbfgs_attack
from blurnet_tf.defences.art_preprocessing import pixel_deflection_preprocessor, wavelet_preprocessor
from blurnet_tf.defences.pixel_deflection import PixelDeflection, wavelet_denoise

from conftest import linear_classifier_case


def norms(adv, x):
    return np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)


def test_deepfool_steps_to_the_linear_boundary_with_its_overshoot():
    model, x, labels, minimal = linear_classifier_case()
    found = deepfool(model, x)
    assert (model(found.adversarial).numpy().argmax(axis=1) != labels).all() and found.success.all()
    ratio = found.norm / minimal  # one linearised step is exact here; only the 2% overshoot adds
    assert np.all(ratio > 1.0) and np.all(ratio <= 1.021), ratio


def test_lbfgs_finds_the_minimal_perturbation_of_a_linear_classifier():
    model, x, labels, minimal = linear_classifier_case()
    adv = lbfgs_attack(model, x, 1 - labels, search_steps=15).adversarial
    assert (model(adv).numpy().argmax(axis=1) == 1 - labels).all()
    ratio = norms(adv, x) / minimal
    assert np.all(ratio >= 0.999) and np.all(ratio <= 1.01), ratio


def test_jsma_raises_the_most_salient_features_in_the_papers_order():
    """2-class linear softmax: the saliency of feature i for target t is proportional to
    d_i = w_t,i - w_o,i, so JSMA raises features in decreasing d, two per step, each to 1 (theta
    = 1), and stops after the first pair that crosses: the changed set is computable by hand."""
    rng = np.random.default_rng(4)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    w = rng.normal(size=(16, 2)).astype(np.float32)
    model.layers[-1].set_weights([w, np.zeros(2, np.float32)])
    x = np.full((1, 4, 4, 1), 0.2, np.float32)
    source = int(model(x).numpy().argmax())
    target = 1 - source
    d = w[:, target] - w[:, source]
    margin = float(x.ravel() @ -d)
    order = np.argsort(-d)
    gains = np.cumsum(0.8 * d[order])
    pairs = int(np.argmax(gains[1::2] > margin)) + 1
    assert gains[2 * pairs - 1] > margin  # the instance is feasible
    found = jsma(model, x, np.array([target]), gamma=1.0)
    adv = found.adversarial
    assert found.success.all()  # read off the model: the target
    changed = np.flatnonzero(adv.ravel() != x.ravel())
    assert sorted(changed) == sorted(order[: 2 * pairs])
    assert np.all(adv.ravel()[changed] == 1.0) and int(model(adv).numpy().argmax()) == target


def test_random_targets_never_pick_the_label_and_are_seeded():
    labels = np.arange(200) % 18
    t = random_targets(labels, 18, seed=5)
    assert (t != labels).all() and ((0 <= t) & (t < 18)).all() and len(set(t)) == 18
    np.testing.assert_array_equal(t, random_targets(labels, 18, seed=5))


def test_art_preprocessor_predicts_through_the_defence_and_passes_gradients_straight_through(original_model, victims):
    x, y = victims[:4], np.full(4, 14)
    classifier = art_classifier(original_model, preprocessing_defences=[wavelet_preprocessor(0.04)])
    denoised = wavelet_denoise(x, 0.04)
    np.testing.assert_allclose(classifier.predict(x), original_model(denoised).numpy(), atol=1e-5)
    with tf.GradientTape() as tape:  # BPDA: the classifier's gradient at the defended image
        t = tf.constant(denoised)
        tape.watch(t)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, original_model(t), from_logits=True))
    np.testing.assert_allclose(
        classifier.loss_gradient(x, np.eye(18)[y]), tape.gradient(loss, t).numpy(), rtol=1e-4, atol=1e-6
    )
    pd = pixel_deflection_preprocessor(PixelDeflection(original_model, deflections=20, window=2, seed=0))
    out, labels = pd(x, y)
    assert out.shape == x.shape and labels is y and not np.array_equal(out, x)
    assert pd.estimate_gradient(x, np.ones_like(x)) is not None and pd.apply_predict and not pd.apply_fit


@pytest.mark.slow
def test_our_cw_agrees_with_arts_on_the_lisa_cnn(original_model, victims):
    """Same 6 images, untargeted, confidence 0: median L2 within 10% of ART's CarliniL2Method.
    ART starts its constant at 1 (from 0.01 it fails on every image in 100 iterations: its line
    search on the learning rate needs the larger constant here)."""
    from art.attacks.evasion import CarliniL2Method

    x = victims[:6]
    labels = original_model(x).numpy().argmax(axis=1)
    ours = carlini_wagner_l2(original_model, x, labels, steps=200, binary_search_steps=5).adversarial
    art = CarliniL2Method(
        art_classifier(original_model),
        max_iter=30,
        binary_search_steps=5,
        learning_rate=0.01,
        initial_const=1.0,
        batch_size=6,
        verbose=False,
    ).generate(x)
    fooled = lambda adv: original_model(adv).numpy().argmax(axis=1) != labels  # noqa: E731
    assert fooled(ours).all() and fooled(art).all()
    ours_l2, art_l2 = np.median(norms(ours, x)), np.median(norms(art, x))
    assert abs(ours_l2 - art_l2) <= 0.1 * art_l2, (ours_l2, art_l2)


def test_batched_class_gradients_equal_arts(original_model, victims):
    """Our one-pass class_gradient against ART's per-label eager passes, for every label form."""
    from art.estimators.classification import TensorFlowV2Classifier

    ours = art_classifier(original_model)
    arts = TensorFlowV2Classifier(original_model, nb_classes=18, input_shape=(32, 32, 3), clip_values=(0, 1))
    x = victims[:5]
    for label in (None, 7, np.array([3, 14, 3, 0, 17])):
        np.testing.assert_allclose(
            ours.class_gradient(x, label=label), arts.class_gradient(x, label=label), rtol=1e-4, atol=1e-6
        )
