"""Defend++: the multi-scale DCT targets, the decoder, the exported classifier, the training step
and schedule, and the robustness scoring."""

import keras
import numpy as np
import pytest
import scipy.fft
import tensorflow as tf

from blurnet_tf.dct import dct2, low_pass
from blurnet_tf.defences import DefendPP, classifier_of
from blurnet_tf.registry import build_model
from blurnet_tf.defences.defendpp import FeatureNoise, low_pass_targets, taps_for
from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget, score

SHAPES = {"mnist": (28, 28, 1), "lisa": (32, 32, 3)}


@pytest.fixture(scope="module")
def mnist_batch(data_dir):
    from blurnet_tf.data.mnist import load_mnist

    x, y, _, _ = load_mnist(data_dir)
    return x[:64], y[:64]


def test_finest_target_is_the_image_and_coarser_ones_match_scipy():
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    targets = low_pass_targets(x, (28, 14, 7))
    assert np.array_equal(targets[0].numpy(), x)
    for target, n in zip(targets[1:], (14, 7)):
        # Independent reference: scipy's orthonormal DCT, keep the n x n block, n-point inverse.
        ref = (
            scipy.fft.idctn(
                scipy.fft.dctn(x, type=2, norm="ortho", axes=(1, 2))[:, :n, :n], type=2, norm="ortho", axes=(1, 2)
            )
            * n
            / 28
        )
        assert target.shape == (3, n, n, 1)
        np.testing.assert_allclose(target.numpy(), ref, atol=1e-5)


def test_each_target_has_no_energy_outside_its_kept_block():
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype(np.float32)
    for target, n in zip(low_pass_targets(x, (32, 16, 8))[1:], (16, 8)):
        # The target's spectrum, put back on the image's 32x32 frequency grid, is exactly the
        # image's top-left n x n block and zero elsewhere.
        grid = np.zeros((2, 32, 32, 3), np.float32)
        grid[:, :n, :n] = dct2(target).numpy() * 32 / n
        np.testing.assert_allclose(grid[:, :n, :n], dct2(x).numpy()[:, :n, :n], atol=1e-4)
        full = dct2(low_pass(x, n)).numpy()
        outside = np.ones((32, 32), bool)
        outside[:n, :n] = False
        assert np.abs(full[:, outside]).max() < 1e-4
        np.testing.assert_allclose(full, grid, atol=1e-4)
    constant = np.full((1, 32, 32, 3), 0.3, np.float32)  # brightness is kept at every scale
    for target in low_pass_targets(constant, (32, 16, 8)):
        np.testing.assert_allclose(target.numpy(), 0.3, atol=1e-5)


@pytest.mark.parametrize("dataset", ["mnist", "lisa"])
@pytest.mark.parametrize("decoder", ["pyramid", "hourglass"])
def test_decoder_outputs_match_the_targets(dataset, decoder):
    model = build_model("defendpp", dataset, decoder=decoder)
    x = np.random.default_rng(2).random((2, *SHAPES[dataset])).astype(np.float32)
    logits, *outputs = model.joint(x)
    targets = low_pass_targets(x, taps_for(model.classifier).sizes)
    assert [o.shape for o in outputs] == [t.shape for t in targets]
    assert logits.shape[-1] == model.classifier.output_shape[-1]
    # Every shared encoder variable is the classifier's own object.
    classifier_ids = {id(v) for v in model.classifier.trainable_variables}
    joint_ids = {id(v) for v in model.joint.trainable_variables}
    assert classifier_ids < joint_ids
    assert len(model.trainable_variables) == len(joint_ids)  # counted once


@pytest.mark.parametrize(
    "architecture, normalised, decoder",
    [
        ("mnist_resnet18", True, "pyramid"),
        ("mnist_resnet18", True, "hourglass"),
        ("mnist_resnet", False, "pyramid"),
        ("lisa_cnn", False, "pyramid"),
    ],
)
def test_the_decoder_is_batch_normalised_where_the_encoder_is(architecture, normalised, decoder):
    dataset = "lisa" if architecture == "lisa_cnn" else "mnist"
    model = build_model("defendpp", dataset, architecture=architecture, decoder=decoder)
    decoder = [layer for layer in model.joint.layers if layer.name.startswith("decoder_")]
    norms = [layer.name for layer in decoder if isinstance(layer, keras.layers.BatchNormalization)]
    hidden = [
        layer
        for layer in decoder
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
        and layer.filters > model.classifier.input_shape[-1]
    ]  # all but the image-channel outputs
    assert len(norms) == (len(hidden) if normalised else 0)
    assert all((not layer.use_bias) == normalised for layer in hidden)


@pytest.mark.parametrize("dataset", ["mnist", "lisa"])
def test_exported_classifier_is_the_baseline_architecture(dataset, tmp_path):
    from blurnet_tf.registry.savedmodel_export import export_probabilities

    defended = classifier_of(build_model("defendpp", dataset))
    baseline = build_model("baseline", dataset)
    describe = lambda m: [(type(layer).__name__, layer.name, [w.shape for w in layer.weights]) for layer in m.layers]  # noqa: E731
    assert describe(defended) == describe(baseline)
    assert defended.count_params() == baseline.count_params()
    shapes = []
    for name, model in (("defended", defended), ("baseline", baseline)):
        loaded = tf.saved_model.load(str(export_probabilities(model, tmp_path / name)))
        shapes.append(sorted(tuple(v.shape) for v in loaded.variables))
    assert shapes[0] == shapes[1]


def _losses(model, x, y):
    _, cls, rec, _ = model.losses_on(tf.constant(x), tf.constant(y), training=False)
    return float(cls), float(rec)


def _compiled(model, lr=1e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def test_one_training_step_lowers_both_losses(mnist_batch):
    keras.utils.set_random_seed(0)
    x, y = mnist_batch
    model = _compiled(build_model("defendpp", "mnist"))
    before = _losses(model, x, y)
    model.train_on_batch(x, y)
    after = _losses(model, x, y)
    assert after[0] < before[0] and after[1] < before[1], (before, after)


def test_alternating_schedule_phases_and_an_autoencoder_phase_leaves_the_head_alone(mnist_batch):
    model = _compiled(
        build_model("defendpp", "mnist", schedule="alternating", alternating_cycles=2, alternating_epochs=1)
    )
    assert [model.phase_weights(e) for e in range(6)] == [
        (0.0, 1.0),
        (1.0, 0.0),
        (0.0, 1.0),
        (1.0, 0.0),
        (1.0, 1.0),
        (1.0, 1.0),
    ]
    x, y = mnist_batch
    head = [w.copy() for w in model.classifier.get_layer("logits").get_weights()]
    stem = model.classifier.get_layer("stem").get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # epoch 0: AE only (fit adds the schedule's callback itself)
    for before, after in zip(head, model.classifier.get_layer("logits").get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(stem, model.classifier.get_layer("stem").get_weights()[0])  # the encoder learned


def test_training_wrapper_round_trips_through_a_keras_file(mnist_batch, tmp_path):
    from blurnet_tf.registry import load_model, save_model

    x, y = mnist_batch
    model = _compiled(build_model("defendpp", "mnist", gn_sigma=0.5))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    save_model(model, tmp_path / "wrapper.keras")
    save_model(model.autoencoder, tmp_path / "autoencoder.keras")
    again = load_model(tmp_path / "wrapper.keras", compile=True)
    assert isinstance(again, DefendPP)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(again.joint(x)[1].numpy(), model.joint(x)[1].numpy(), atol=1e-6)
    autoencoder = load_model(tmp_path / "autoencoder.keras")  # safe_mode: no lambdas needed
    np.testing.assert_allclose(autoencoder(x)[0].numpy(), model.joint(x)[1].numpy(), atol=1e-6)


def test_feature_noise_is_relative_and_only_in_training():
    x = tf.constant(np.random.default_rng(3).normal(0, 2.0, (64, 8, 8, 16)).astype(np.float32))
    layer = FeatureNoise(0.5)
    assert np.array_equal(layer(x, training=False).numpy(), x.numpy())
    noise = (layer(x, training=True) - x).numpy()
    assert noise.std() == pytest.approx(0.5 * x.numpy().std(), rel=0.05)


def test_mnist_rejects_defences_defined_on_the_lisa_cnn():
    with pytest.raises(ValueError, match="LISA-CNN's first layer"):
        build_model("tv", "mnist")


def test_min_norm_attacks_count_only_adversarials_within_the_budget():
    """Hand-made case: a model that predicts 0 unless pixel 0 exceeds 0.5, four images of label 0."""
    inputs = keras.Input((2, 2, 1))
    flat = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(2)(flat)
    model = keras.Model(inputs, logits)
    model.layers[-1].set_weights(
        [np.array([[0, 1], [0, 0], [0, 0], [0, 0]], np.float32) * 10, np.array([0, -5], np.float32)]
    )
    x = np.zeros((4, 2, 2, 1), np.float32)
    y = np.zeros(4, np.int64)
    adv = x.copy()
    adv[0, 0, 0, 0] = 0.6  # fooled, norm 0.6
    adv[1, 0, 0, 0] = 0.9  # fooled, norm 0.9 (over a 0.8 budget)
    adv[2, 1, 1, 0] = 0.3  # not fooled
    result = score(model, x, y, adv, "ddn", AttackBudget(l2_budget=0.8))
    assert result["accuracy"] == pytest.approx(0.75)  # only image 0 counts as broken
    assert result["accuracy_any_norm"] == pytest.approx(0.5)  # images 0 and 1 fooled at some norm
    assert result["median_l2"] == np.median([0.6, 0.9, np.inf, np.inf])  # = inf: half were not fooled
    assert result["mean_l2_found"] == pytest.approx(0.75)


def test_fgsm_training_uses_exact_fgsm_examples():
    from blurnet_tf.defences import AdversarialTraining

    model = build_model("fgsm_train", "mnist")
    assert isinstance(model, AdversarialTraining)
    x = np.random.default_rng(4).random((4, 28, 28, 1)).astype(np.float32)
    y = np.arange(4)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        loss = keras.losses.sparse_categorical_crossentropy(y, model.classifier(xt), from_logits=True)
    expected = np.clip(x + 0.2 * np.sign(tape.gradient(loss, xt).numpy()), 0, 1)
    np.testing.assert_allclose(model.adversarial(tf.constant(x), tf.constant(y, tf.int64)).numpy(), expected, atol=1e-6)


def test_the_old_training_callbacks_call_still_works_and_says_it_is_no_longer_needed():
    model = build_model("defendpp", "mnist", schedule="alternating")
    with pytest.warns(DeprecationWarning, match=r"DefendPP.training_callbacks\(\) is deprecated .* fit adds"):
        assert model.training_callbacks() == []
