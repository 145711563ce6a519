"""The attacks and defences on a Keras model that is not the LISA-CNN: other layer names, a
24x24 input, 5 classes, a global-average-pooling head. Layer names go in as arguments."""

import functools

import keras
import numpy as np
import pytest
import scipy.ndimage

from blurnet_tf.attacks import rp2
from blurnet_tf.defences import BlurDepthwiseConv2D, FeatureMapRegularizer, insert_blur
from blurnet_tf.defences.blur import linf_penalty
from blurnet_tf.defences.pixel_deflection import PixelDeflection, class_activation_maps
from blurnet_tf.defences.regularizers import REGULARISERS, total_variation
from blurnet_tf.models import layer_output_model

SIZE, CLASSES = 24, 5


def small_model(head="gap", extra=None, seed=0):
    """conv -> relu 'stem' [-> extra layer] -> conv -> relu 'maps' -> GAP or Flatten -> dense 'scores'."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem_conv")(inputs)
    x = keras.layers.Activation("relu", name="stem")(x)
    if extra is not None:
        x = extra(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="maps_conv")(x)
    x = keras.layers.Activation("relu", name="maps")(x)
    x = keras.layers.GlobalAveragePooling2D()(x) if head == "gap" else keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="scores")(x), name=f"small_{head}")


def images(n=6, seed=1):
    return np.random.default_rng(seed).random((n, SIZE, SIZE, 3)).astype(np.float32)


def banded(n, seed):
    """Class k: horizontal band k (of 5) brighter than the rest, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    x = 0.35 * rng.random((n, SIZE, SIZE, 3))
    for i, k in enumerate(labels):
        x[i, 5 * k : 5 * k + 4] += 0.6
    return x.astype(np.float32), labels


@functools.cache
def trained_small_model():
    """Trained once per session and shared (the tests that take it only read it: never fit or change it)."""
    model = small_model()
    x, y = banded(600, seed=2)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=12, batch_size=32, verbose=0)
    return model


def sticker_mask():
    mask = np.zeros((SIZE, SIZE, 3), np.float32)
    mask[:, 6:18] = 1
    return mask


def test_rp2_reaches_targets_on_another_model_and_its_adaptive_term_reads_the_named_layer():
    model = trained_small_model()
    x, labels = banded(6, seed=3)
    assert (model(x).numpy().argmax(axis=1) == labels).all()
    targets = np.arange(CLASSES)
    plain = rp2(model, x, sticker_mask(), targets, lam=0.002, epochs=150, seed=0)
    assert plain.adversarial.shape == (1, CLASSES, 6, SIZE, SIZE, 3)
    assert (plain.predictions[0] == targets[:, None]).all()  # one sticker per target fools all 6 images
    adaptive = rp2(
        model, x, sticker_mask(), [1], lam=0.0, epochs=2, extra_loss=total_variation, feature_layer="stem", seed=0
    )
    stem = layer_output_model(model, "stem")
    # epoch 0's adaptive term is TV of the stem maps at the initial (uniform) noise
    initial = rp2(model, x, sticker_mask(), [1], lam=0.0, epochs=0, seed=0).adversarial[0, 0]
    expected = float(total_variation(stem(initial)))
    assert adaptive.history["extra_loss"][0] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="relu1"):
        rp2(model, x, sticker_mask(), [1], lam=0.0, epochs=1, extra_loss=total_variation)


@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_pixel_deflection_maps_on_another_model(head):
    model, x = small_model(head), images()
    cams, bias = class_activation_maps(model, x, conv_layer="maps", dense_layer="scores")
    assert cams.shape == (6, SIZE // 2, SIZE // 2, CLASSES)
    np.testing.assert_allclose(cams.sum(axis=(1, 2)) + bias, model(x).numpy(), rtol=1e-4, atol=1e-5)
    pd = PixelDeflection(model, deflections=30, window=2, cam_layer="maps", dense_layer="scores", ensemble=3)
    maps = pd.activation_map(x)
    assert maps.shape == (6, SIZE, SIZE) and maps.min() == 0.0 and maps.max() == 1.0
    assert pd.predict_classes(x).shape == (6,)


def test_insert_blur_after_a_named_layer():
    model, x = small_model(), images()
    identity = insert_blur(model, "l1", kernel_size=1, after="stem")  # a 1x1 box blur is the identity
    np.testing.assert_allclose(identity(x).numpy(), model(x).numpy(), atol=1e-6)
    blurred = insert_blur(model, "l1", kernel_size=3, after="stem")
    stem = layer_output_model(model, "stem")(x).numpy()
    reference = scipy.ndimage.uniform_filter(stem, size=(1, 3, 3, 1), mode="constant")  # 3x3 box, zero padding
    np.testing.assert_allclose(layer_output_model(blurred, "inserted_l1_blur")(x).numpy(), reference, atol=1e-5)
    with pytest.raises(ValueError, match="no layer 'relu1'"):
        insert_blur(model, "l1")
    inputs = keras.Input((SIZE, SIZE, 3))
    skip = keras.layers.Conv2D(3, 3, padding="same", name="branch")(inputs)
    residual = keras.Model(inputs, keras.layers.Add(name="join")([inputs, skip]))
    with pytest.raises(ValueError, match="chains of layers"):
        insert_blur(residual, "l1", after="branch")


@pytest.mark.parametrize("kind", sorted(REGULARISERS))
def test_each_regulariser_adds_alpha_times_its_value_on_another_model(kind):
    alpha = 0.3
    model = small_model(extra=FeatureMapRegularizer(kind, alpha, name="reg"))
    x = images()
    model(x)
    maps = layer_output_model(model, "stem")(x)
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(alpha * float(REGULARISERS[kind](maps)), rel=1e-5)


def test_learned_blur_penalty_on_another_model():
    blur = BlurDepthwiseConv2D(5, alpha=0.2, name="learned_blur")
    model = small_model(extra=blur)
    model(images())
    assert float(model.losses[0]) == pytest.approx(0.2 * float(linf_penalty(blur.kernel)), rel=1e-6)
    assert float(linf_penalty(blur.kernel)) == pytest.approx(8 / 25)  # box init: 1/25 per channel, 8 channels


def test_every_attack_takes_a_plain_python_function_and_gives_the_keras_models_result():
    from blurnet_tf.attacks import autoattack, carlini_wagner_l2, ddn, deepfool, jsma, lbfgs_attack, linf_attack

    model = trained_small_model()
    x, y = banded(4, seed=5)

    def plain(batch):  # no `training` argument: the adapter calls it as plain(x)
        return model(batch, training=False)

    for attack in (
        lambda m: carlini_wagner_l2(m, x, y, binary_search_steps=2, steps=20),
        lambda m: ddn(m, x, y, steps=10),
        lambda m: lbfgs_attack(m, x, (y + 1) % CLASSES, search_steps=2, steps=20),
        lambda m: linf_attack(m, x, eps=0.05, steps=3, y=y),
        lambda m: autoattack(m, x, y, norm="Linf", eps=0.05, steps=5, target_classes=2, square_queries=20),
        lambda m: deepfool(m, x, steps=5),
        lambda m: jsma(m, x, (y + 1) % CLASSES, gamma=0.02),
    ):
        np.testing.assert_allclose(attack(plain).adversarial, attack(model).adversarial, atol=1e-6)
    keras_run = rp2(model, x, sticker_mask(), [1, 3], lam=0.002, epochs=5)
    plain_run = rp2(plain, x, sticker_mask(), [1, 3], lam=0.002, epochs=5)
    np.testing.assert_allclose(plain_run.noise, keras_run.noise, atol=1e-6)
    with pytest.raises(ValueError, match="needs a Keras model"):
        rp2(plain, x, sticker_mask(), [1], lam=0.002, epochs=1, extra_loss=total_variation, feature_layer="stem")


def test_defendpp_trains_on_another_model_given_its_taps_by_layer_name_and_survives_save_and_load(tmp_path):
    from blurnet_tf.defences import DefendPP, EncoderTaps, classifier_of
    from blurnet_tf.registry import load_model, save_model

    model = small_model()
    with pytest.raises(ValueError, match="pass taps=EncoderTaps"):
        DefendPP(model)  # not one of the presets
    with pytest.raises(ValueError, match=r"does not have: \['nope'\]"):
        DefendPP(model, taps=EncoderTaps(sizes=(24, 12), skips=("nope",), bottleneck="maps"))
    with pytest.raises(ValueError, match="halve"):
        DefendPP(model, taps=EncoderTaps(sizes=(24, 10), skips=("stem",), bottleneck="maps"))
    defended = DefendPP(model, taps={"sizes": (24, 12), "skips": ("stem",), "bottleneck": "maps"})
    assert [o.shape[1:] for o in defended.joint.outputs] == [(CLASSES,), (24, 24, 3), (12, 12, 3)]
    defended.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = banded(64, seed=3)
    history = defended.fit(x, y, epochs=2, batch_size=32, verbose=0).history
    assert history["reconstruction_loss"][-1] < history["reconstruction_loss"][0]
    np.testing.assert_allclose(defended(x[:4]), model(x[:4]))  # the classifier is the defended model
    save_model(defended, tmp_path / "defended.keras")
    again = load_model(tmp_path / "defended.keras")
    assert again.taps == defended.taps and again.explicit_taps
    np.testing.assert_allclose(classifier_of(again)(x[:4]), model(x[:4]), atol=1e-6)


@pytest.mark.parametrize("first", ["rescaling", "conv"])
def test_insert_blur_on_a_sequential_model_keeps_its_first_layer(first):
    """keras.Sequential lists no InputLayer: its first layer (weightless or not) must be copied too. An
    identity blur (1x1 box) then leaves the logits exactly as they were."""
    head = keras.layers.Rescaling(0.5, offset=0.25) if first == "rescaling" else keras.layers.Conv2D(4, 3, name="stem")
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            head,
            keras.layers.Conv2D(6, 3, name="maps"),
            keras.layers.Flatten(),
            keras.layers.Dense(CLASSES),
        ]
    )
    x = images(4)
    for where, after in (("input", "maps"), ("l1", "maps")):
        blurred = insert_blur(model, where, kernel_size=1, after=after)
        copied = [
            type(lay) for lay in blurred.layers if not isinstance(lay, (keras.layers.InputLayer, BlurDepthwiseConv2D))
        ]
        assert copied == [type(layer) for layer in model.layers]
        np.testing.assert_allclose(blurred(x).numpy(), model(x).numpy(), atol=1e-6)


def test_a_layer_name_the_model_lacks_is_refused_naming_the_layers_it_has():
    """The LISA-CNN's layer names are defaults of the generic helpers: another model gets a line naming its
    own layers, not TensorFlow's "No such layer"."""
    model = small_model()
    for call in (
        lambda: layer_output_model(model),
        lambda: rp2(model, images(2), sticker_mask(), [1], lam=0.0, epochs=1, extra_loss=total_variation),
    ):
        with pytest.raises(
            ValueError, match=r"has no layer 'relu1' .* pass one of its own: .*stem_conv, stem, maps_conv"
        ):
            call()


@pytest.mark.parametrize("denoiser", ["wavelet", "jpeg"])
def test_pixel_deflection_on_grey_images_denoises_them_as_rgb_of_equal_channels(denoiser):
    """A grey image goes through the RGB denoisers as three equal channels; they come back equal (YCbCr's
    chroma of a grey image is constant), so the one channel returned loses nothing."""
    from blurnet_tf.defences.image_denoisers import jpeg, wavelet_denoise

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    maps = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="maps")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, name="scores")(keras.layers.GlobalAveragePooling2D()(maps)))
    grey = images()[..., :1]
    rgb = np.repeat(grey, 3, axis=-1)
    denoised = wavelet_denoise(rgb) if denoiser == "wavelet" else jpeg(rgb)
    assert np.ptp(denoised, axis=-1).max() <= (1e-5 if denoiser == "wavelet" else 1.5 / 255)
    pd = PixelDeflection(model, deflections=0, denoiser=denoiser, cam_layer="maps", dense_layer="scores")
    np.testing.assert_allclose(pd.defend(grey), denoised.mean(axis=-1, keepdims=True), atol=1e-6)
    shares = PixelDeflection(
        model, deflections=20, window=2, denoiser=denoiser, cam_layer="maps", dense_layer="scores", ensemble=3
    ).predict(grey)
    assert shares.shape == (6, CLASSES) and np.allclose(shares.sum(axis=1), 1.0)


@pytest.mark.parametrize("bad", ["nan", "0-255", "two channels", "3-d", "empty", "other size"])
def test_pixel_deflection_refuses_images_it_would_defend_wrongly(bad):
    x = {
        "nan": np.where(images() > 0.5, np.nan, images()),
        "0-255": images() * 255,
        "two channels": images()[..., :2],
        "3-d": images()[0],
        "empty": images()[:0],
        "other size": images()[:, :12, :12],
    }[bad]
    match = {"empty": "images: expected at least one image", "other size": "images: the classifier takes images shaped"}
    pd = PixelDeflection(small_model(), deflections=5, window=2, cam_layer="maps", dense_layer="scores")
    with pytest.raises(ValueError, match=match.get(bad, r"images: expected grey or RGB images \[N, H, W, 1 or 3\]")):
        pd.predict(x)


def _sequential_40():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((40, 40, 3)),
            keras.layers.Rescaling(1.0, name="scale"),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="block1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(6, name="logits"),
        ],
        name="seq40",
    )


def _functional_28():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((28, 28, 1))
    a = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="block1")(inputs)
    b = keras.layers.Conv2D(5, 3, padding="same", name="side")(inputs)
    x = keras.layers.Add(name="merge")([a, b])  # not a chain: two branches from the input
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="fun28")


@pytest.mark.slow  # trains each defended model with fit and reloads it
@pytest.mark.parametrize("make", [_sequential_40, _functional_28], ids=["sequential-40x40x3", "functional-28x28x1"])
@pytest.mark.parametrize("defence", ["tv", "blur"])
def test_add_blurnet_on_your_own_model_trains_with_fit_and_survives_save_and_load(tmp_path, make, defence):
    """The issue-42 path: BlurNet TV and learned blur after a named layer of a Sequential model with a weightless
    first layer and of a two-branch functional one; the original untouched, its weights copied, the penalty in
    the loss at α times the regulariser, and the trained model the same after a safe_mode load."""
    from blurnet_tf.defences import add_blurnet, total_variation
    from blurnet_tf.models.lisa_cnn import layer_output_model
    from blurnet_tf.registry import load_model, save_model

    model = make()
    x = np.random.default_rng(0).random((16, *model.input_shape[1:])).astype(np.float32)
    y = np.arange(16) % model.output_shape[-1]
    before = [w.copy() for w in model.get_weights()]
    defended = add_blurnet(model, defence, after="block1", alpha=0.5)
    assert [layer.name for layer in defended.layers if "blurnet" in layer.name] == [f"block1_blurnet_{defence}"]
    for layer in [layer for layer in model.layers if layer.weights]:  # every weighted layer, with its weights
        for w, v in zip(layer.get_weights(), defended.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(w, v)
    if defence == "tv":  # an identity on the maps: the same logits, and the penalty is 0.5 x TV of block1's maps
        np.testing.assert_allclose(defended(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
        penalty = float(sum(defended.losses))
        maps = layer_output_model(model, "block1")(x)
        assert penalty == pytest.approx(0.5 * float(total_variation(maps)), rel=1e-4)
    else:  # a box blur of the maps is a different model, with the L∞ penalty on its kernel
        assert not np.allclose(defended(x).numpy(), model(x).numpy())
    defended.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    defended.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the original untouched
    save_model(defended, tmp_path / "defended.keras")
    np.testing.assert_allclose(
        load_model(tmp_path / "defended.keras")(x).numpy(), defended(x).numpy(), rtol=1e-5, atol=1e-6
    )


def test_add_blurnet_names_what_it_needs():
    from blurnet_tf.defences import add_blurnet

    model = _sequential_40()
    with pytest.raises(ValueError, match="after: seq40 has no layer 'relu1'; its layers are scale, block1, pool"):
        add_blurnet(model, "tv", after="relu1")
    with pytest.raises(ValueError, match="alpha: the paper gives none for a 9x9 blur"):
        add_blurnet(model, "blur", after="block1", kernel_size=9)
    with pytest.raises(ValueError, match="alpha: expected a finite number >= 0"):
        add_blurnet(model, "tik_hf", after="block1", alpha=float("nan"))
    with pytest.raises(ValueError, match="defence: unknown 'median'"):
        add_blurnet(model, "median", after="block1")
    functional = _functional_28()
    for kwargs, match in (  # the second sweep's cases (issue 43): each once silently wrong or a Keras dump
        ({"after": functional.layers[0].name}, "is the model's input"),
        ({"after": "logits"}, r"outputs \(None, 10\); expected feature maps \[N, H, W, K\]"),
        ({"after": "block1", "alpha": True}, "alpha: expected a finite number >= 0, got True"),
        ({"after": "block1", "kernel_size": 999, "alpha": 0.1}, r"kernel_size: expected an integer in 1..28"),
        ({"after": "block1", "tik_window": 0}, "tik_window: expected an integer in 1..28, got 0"),
        ({"after": "block1", "tik_pseudo_mode": "bogus"}, "tik_pseudo_mode: expected one of elementwise, matmul"),
        ({"after": "block1", "blur_sigma": -1.0}, "blur_sigma: expected a number > 0 or None"),
    ):
        with pytest.raises(ValueError, match=match):
            add_blurnet(functional, "tv", **kwargs)
    assert add_blurnet(functional, "tv", after="block1", alpha=np.float32(0.1)).get_layer(
        "block1_blurnet_tv"
    ).alpha == pytest.approx(0.1)
    with pytest.raises(ValueError, match="after: 'block1' already has a BlurNet defence"):
        add_blurnet(add_blurnet(functional, "tv", after="block1"), "blur", after="block1")

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="model: expected a built functional or Sequential Keras model"):
        add_blurnet(Subclassed(), "tv", after="block1")
