"""DeepFool and JSMA from the Adversarial Robustness Toolbox (ART 1.20), on any Keras classifier.

`art_classifier` is the one bridge from our models (images in [0, 1] -> logits) to ART; pass a
preprocessor from `blurnet_tf.defences.art_preprocessing` to attack through a defence with BPDA.
Defaults are the attacks' papers' settings, as Pixel Deflection's Table 2 ran them. Both attacks return an
AttackResult, its success read off the ART classifier they attacked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from blurnet_tf.art_logging import import_art
from blurnet_tf.attacks.attack_result import AttackResult, predicted, scored, settings_of
from blurnet_tf.deprecation import renamed_keywords

if TYPE_CHECKING:
    import tensorflow as tf
    from art.defences.preprocessor import Preprocessor
    from art.estimators.classification import TensorFlowV2Classifier
    from art.estimators.classification.classifier import ClassifierMixin

__all__ = ["art_classifier", "deepfool", "jsma", "random_targets"]


def art_classifier(
    model: keras.Model | Callable[..., tf.Tensor],
    *,
    nb_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    preprocessing_defences: Preprocessor | list[Preprocessor] | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    probabilities: bool = False,
) -> TensorFlowV2Classifier:
    """ART's TensorFlowV2Classifier around a model that returns logits.

    The classifier computes class gradients in one compiled call (a batch Jacobian) rather than
    ART's one pass per label; the values are the same.

    Parameters
    ----------
    model : keras.Model | Callable[..., tf.Tensor]
        A Keras model, or any callable from images [N, H, W, C] in [0, 1] to logits [N, classes]
        (then give nb_classes and input_shape); called through logits_fn.
    nb_classes : int | None
        The number of classes (default: read off the Keras model's output shape).
    input_shape : Sequence[int] | None
        One image's shape [H, W, C] (default: read off the Keras model's input shape).
    preprocessing_defences : Preprocessor | list[Preprocessor] | None
        ART preprocessors applied before the model (their estimate_gradient is used on the way back).
    clip_values : tuple[float, float]
        The range of valid pixel values (0, 1).
    probabilities : bool
        True shows ART the softmax of the logits instead, so its class gradients are those of the probabilities.

    Returns
    -------
    TensorFlowV2Classifier
        The ART classifier.
    """
    import tensorflow as tf

    from blurnet_tf.attacks.logits_model import logits_fn

    if not isinstance(model, keras.Model) and (nb_classes is None or input_shape is None):
        raise ValueError("nb_classes, input_shape: a plain function does not say them; pass both")
    nb_classes = int(nb_classes or model.output_shape[-1])  # type: ignore[union-attr]  # (a Keras model here)
    input_shape = tuple(input_shape or model.input_shape[1:])  # type: ignore[union-attr]
    if not isinstance(model, keras.Model):  # ART calls model(x, training=...): a plain function takes no `training`
        f = logits_fn(model)
        model = lambda x, training=False: f(x)  # noqa: E731
    net = (lambda x, training=False: tf.nn.softmax(model(x, training=training))) if probabilities else model
    return _classifier_class()(
        net,
        nb_classes=nb_classes,
        input_shape=input_shape,
        clip_values=clip_values,
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities),
        preprocessing_defences=preprocessing_defences,
    )


def _classifier_class():
    """ART's TensorFlowV2Classifier with class_gradient in one compiled call.

    ART runs one eager forward + backward pass per distinct label (18 per DeepFool step, up to 17
    per JSMA step). At inference the images of a batch are independent, so the gradient of the sum
    of each image's own output gives every image its gradient in one pass, and all classes at once
    are a batch Jacobian. Same values (tests/test_art_bridge.py), several times faster."""
    import tensorflow as tf

    import_art()
    from art.estimators.classification import TensorFlowV2Classifier

    class BatchedGradientClassifier(TensorFlowV2Classifier):
        def class_gradient(self, x, label=None, training_mode=False, **kwargs):
            x_pre, _ = self._apply_preprocessing(x, y=None, fit=False)
            x_t = tf.convert_to_tensor(x_pre, tf.float32)
            if label is None:
                grads = self._jacobian(x_t).numpy()
            else:
                labels = np.broadcast_to(np.asarray(label, np.int32), (len(x_pre),))
                grads = self._own_output_gradient(x_t, tf.constant(labels)).numpy()[:, None]
            return self._apply_preprocessing_gradient(x, grads) if not self.all_framework_preprocessing else grads

        @tf.function(reduce_retracing=True)
        def _own_output_gradient(self, x, labels):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = self._model(x, training=False)
                picked = tf.reduce_sum(out * tf.one_hot(labels, tf.shape(out)[1], dtype=out.dtype))
            return tape.gradient(picked, x)

        @tf.function(reduce_retracing=True)
        def _jacobian(self, x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = self._model(x, training=False)
            return tape.batch_jacobian(out, x)

    return BatchedGradientClassifier


@renamed_keywords(images="x", max_iter="steps")
def deepfool(
    model: keras.Model | Callable[..., tf.Tensor] | ClassifierMixin,
    x: np.ndarray,
    *,
    overshoot: float = 0.02,
    steps: int = 50,
    nb_grads: int | None = None,
    batch_size: int = 128,
    preprocessing_defences: Preprocessor | list[Preprocessor] | None = None,
) -> AttackResult:
    """Untargeted DeepFool (Moosavi-Dezfooli et al. 2016, Alg. 2).

    The linearised step to the nearest class boundary, scaled by 1 + overshoot, over every class
    by default.

    Parameters
    ----------
    model : keras.Model | Callable[..., tf.Tensor] | ClassifierMixin
        A Keras model, a callable from images [N, H, W, C] in [0, 1] to logits [N, classes], or an
        ART classifier (used as it is).
    x : np.ndarray
        [N, H, W, C] images in [0, 1].
    overshoot : float
        The step is scaled by 1 + overshoot (the paper's 0.02).
    steps : int
        The most iterations (the paper's 50).
    nb_grads : int | None
        How many of the most likely classes to consider (None: every class).
    batch_size : int
        Images per ART batch.
    preprocessing_defences : Preprocessor | list[Preprocessor] | None
        ART preprocessors applied before a Keras model or callable (BPDA on the way back).

    Returns
    -------
    AttackResult
        [N, H, W, C] float32 adversarial images (ART's output, fooling or not), success [N] (the classifier's
        prediction on them is not its prediction on `x`), the L2 norm of each successful perturbation (0 where
        it failed) and the settings (nb_grads resolved).

    Raises
    ------
    ValueError
        If preprocessing_defences are given with an ART classifier (it carries its own).

    Notes
    -----
    ART's shortcut to the nb_grads most likely classes (nb_grads < classes) took steps ~100x
    shorter than the linear estimate on our trained baseline. With nb_grads=10 it left 96% of the
    500 test images correct in the full Pixel Deflection stage (results/full-pixel-deflection as
    first committed, 91829d5; a first check on 20 images: 95%); over all classes, 0%. With 18
    classes all of them cost one batched Jacobian anyway.
    """
    import_art()
    from art.attacks.evasion import DeepFool

    classifier = _as_art(model, preprocessing_defences, x=x)
    nb_grads = classifier.nb_classes if nb_grads is None else nb_grads
    attack = DeepFool(
        classifier, max_iter=steps, epsilon=overshoot, nb_grads=nb_grads, batch_size=batch_size, verbose=False
    )
    x = np.asarray(x, np.float32)
    adv = attack.generate(x).astype(np.float32)
    to_logits = _predict(classifier, batch_size)
    settings = settings_of(
        "deepfool",
        overshoot=overshoot,
        steps=steps,
        nb_grads=nb_grads,
        batch_size=batch_size,
        preprocessing_defences=preprocessing_defences,
    )
    # Untargeted, so the label is the clean prediction, taken after the attack as linf_attack takes it.
    return scored(to_logits, x, adv, predicted(to_logits, x), settings=settings)


@renamed_keywords(images="x")
def jsma(
    model: keras.Model | Callable[..., tf.Tensor] | ClassifierMixin,
    x: np.ndarray,
    targets: np.ndarray,
    *,
    theta: float = 1.0,
    gamma: float = 0.145,
    batch_size: int = 128,
    preprocessing_defences: Preprocessor | list[Preprocessor] | None = None,
) -> AttackResult:
    """Targeted JSMA (Papernot et al. 2016, Alg. 3, eq. 8-9).

    Raises the two most salient features by theta per step until the target class wins or a
    fraction gamma of the features changed.

    Parameters
    ----------
    model : keras.Model | Callable[..., tf.Tensor] | ClassifierMixin
        A Keras model, a callable from images [N, H, W, C] in [0, 1] to logits [N, classes], or an
        ART classifier (used as it is).
    x : np.ndarray
        [N, H, W, C] images in [0, 1].
    targets : np.ndarray
        [N] the target class of each image (e.g. from random_targets).
    theta : float
        The change per step of each chosen feature (the paper's +1).
    gamma : float
        The largest fraction of features changed (the paper's 14.5%).
    batch_size : int
        Images per ART batch.
    preprocessing_defences : Preprocessor | list[Preprocessor] | None
        ART preprocessors applied before a Keras model or callable (BPDA on the way back).

    Returns
    -------
    AttackResult
        [N, H, W, C] float32 adversarial images (ART's output, fooling or not), success [N] (the classifier's
        prediction on them is the target), the L2 norm of each successful perturbation (0 where it failed)
        and the settings.

    Raises
    ------
    ValueError
        If preprocessing_defences are given with an ART classifier (it carries its own).

    Notes
    -----
    ART ranks features by the target output's gradient alone. On the softmax F of the paper,
    sum_j F_j = 1 makes beta = -alpha, so that ranking is the paper's map alpha * |beta|; on
    logits it would ignore the other classes. So the Keras model is shown to ART as softmax.
    """
    import_art()
    from art.attacks.evasion import SaliencyMapMethod

    classifier = _as_art(model, preprocessing_defences, probabilities=True, x=x)
    onehot = np.eye(classifier.nb_classes, dtype=np.float32)[np.asarray(targets)]
    attack = SaliencyMapMethod(classifier, theta=theta, gamma=gamma, batch_size=batch_size, verbose=False)
    x = np.asarray(x, np.float32)
    adv = attack.generate(x, y=onehot).astype(np.float32)
    settings = settings_of(
        "jsma", theta=theta, gamma=gamma, batch_size=batch_size, preprocessing_defences=preprocessing_defences
    )
    return scored(_predict(classifier, batch_size), x, adv, np.asarray(targets), targeted=True, settings=settings)


def random_targets(labels: np.ndarray, nb_classes: int, seed: int = 0) -> np.ndarray:
    """A target class per image, uniform over the classes other than its label.

    Seeded, unlike ART's own draw, which uses NumPy's global state.

    Parameters
    ----------
    labels : np.ndarray
        [N] integer labels.
    nb_classes : int
        The number of classes.
    seed : int
        Seed of the draw.

    Returns
    -------
    np.ndarray
        [N] target classes, none equal to its label.
    """
    labels = np.asarray(labels)
    shift = np.random.default_rng(seed).integers(1, nb_classes, len(labels))
    return (labels + shift) % nb_classes


def _predict(classifier, batch_size):
    """The attacked ART classifier as scored() reads a model: its scores (logits, or JSMA's softmax: the same
    arg-max) through its own preprocessing."""
    return lambda t: classifier.predict(np.asarray(t), batch_size=batch_size)


def _as_art(model, preprocessing_defences, probabilities=False, x=None):
    """An ART classifier from a Keras model, a plain callable images -> logits (its class count read off
    one call on x[:1]) or an ART classifier (used as it is)."""
    if isinstance(model, keras.Model):
        return art_classifier(model, preprocessing_defences=preprocessing_defences, probabilities=probabilities)
    if not hasattr(model, "nb_classes") and callable(model) and x is not None:  # a plain callable
        import tensorflow as tf

        from blurnet_tf.attacks.logits_model import logits_fn

        classes = int(logits_fn(model)(tf.constant(np.asarray(x[:1], np.float32))).shape[-1])
        return art_classifier(
            model,
            nb_classes=classes,
            input_shape=np.shape(x)[1:],
            preprocessing_defences=preprocessing_defences,
            probabilities=probabilities,
        )
    if preprocessing_defences is not None:
        raise ValueError("preprocessing_defences go with a Keras model; an ART classifier carries its own")
    return model
