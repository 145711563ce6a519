"""DeepFool and JSMA from the Adversarial Robustness Toolbox (ART 1.20), on any Keras classifier.

`art_classifier` is the one bridge from our models (images in [0, 1] -> logits) to ART; pass a
preprocessor from `blurnet_tf.defences.art_preprocessing` to attack through a defence with BPDA.
Defaults are the attacks' papers' settings, as Pixel Deflection's Table 2 ran them.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from blurnet_tf.deprecation import renamed_keywords

__all__ = ["art_classifier", "deepfool", "jsma", "random_targets"]


def art_classifier(model, *, nb_classes: int | None = None, input_shape: Sequence[int] | None = None,
                   preprocessing_defences=None, clip_values: tuple[float, float] = (0.0, 1.0),
                   probabilities: bool = False):
    """ART's TensorFlowV2Classifier around a model that returns logits (a Keras model, or any
    callable images -> logits with nb_classes and input_shape given; called through logits_fn).

    preprocessing_defences: ART preprocessors applied before the model (their estimate_gradient
    is used on the way back). probabilities=True shows ART the softmax of the logits instead, so
    its class gradients are those of the probabilities."""
    import tensorflow as tf

    from blurnet_tf.attacks.logits_model import logits_fn

    nb_classes = int(nb_classes or model.output_shape[-1])
    input_shape = tuple(input_shape or model.input_shape[1:])
    if not isinstance(model, keras.Model):  # ART calls model(x, training=...): a plain function takes no `training`
        f = logits_fn(model)
        model = lambda x, training=False: f(x)  # noqa: E731
    net = (lambda x, training=False: tf.nn.softmax(model(x, training=training))) if probabilities else model
    return _classifier_class()(net, nb_classes=nb_classes, input_shape=input_shape, clip_values=clip_values,
                               loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities),
                               preprocessing_defences=preprocessing_defences)


def _classifier_class():
    """ART's TensorFlowV2Classifier with class_gradient in one compiled call.

    ART runs one eager forward + backward pass per distinct label (18 per DeepFool step, up to 17
    per JSMA step). At inference the images of a batch are independent, so the gradient of the sum
    of each image's own output gives every image its gradient in one pass, and all classes at once
    are a batch Jacobian. Same values (tests/test_art_bridge.py), several times faster."""
    import tensorflow as tf
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


@renamed_keywords(images="x")
def deepfool(model, x: np.ndarray, *, overshoot: float = 0.02, max_iter: int = 50, nb_grads: int | None = None,
             batch_size: int = 128, preprocessing_defences=None) -> np.ndarray:
    """Untargeted DeepFool (Moosavi-Dezfooli et al. 2016, Alg. 2): the linearised step to the
    nearest class boundary, scaled by 1 + overshoot (the paper's 0.02 and 50 iterations), over
    every class by default (nb_grads=None). model: a Keras model, a callable images -> logits or an ART
    classifier.

    ART's shortcut to the nb_grads most likely classes (nb_grads < classes) took steps ~100x
    shorter than the linear estimate on our trained baseline. With nb_grads=10 it left 96% of the
    500 test images correct in the full Pixel Deflection stage (results/full-pixel-deflection as
    first committed, 91829d5; a first check on 20 images: 95%); over all classes, 0%. With 18
    classes all of them cost one batched Jacobian anyway."""
    from art.attacks.evasion import DeepFool

    classifier = _as_art(model, preprocessing_defences, x=x)
    nb_grads = classifier.nb_classes if nb_grads is None else nb_grads
    attack = DeepFool(classifier, max_iter=max_iter, epsilon=overshoot, nb_grads=nb_grads, batch_size=batch_size,
                      verbose=False)
    return attack.generate(np.asarray(x, np.float32)).astype(np.float32)


@renamed_keywords(images="x")
def jsma(model, x: np.ndarray, targets: np.ndarray, *, theta: float = 1.0, gamma: float = 0.145,
         batch_size: int = 128, preprocessing_defences=None) -> np.ndarray:
    """Targeted JSMA (Papernot et al. 2016, Alg. 3, eq. 8-9): raise the two most salient features
    by theta per step until the target class wins or a fraction gamma of the features changed
    (the paper's theta = +1, gamma = 14.5%).

    ART ranks features by the target output's gradient alone. On the softmax F of the paper,
    sum_j F_j = 1 makes beta = -alpha, so that ranking is the paper's map alpha * |beta|; on
    logits it would ignore the other classes. So the Keras model is shown to ART as softmax."""
    from art.attacks.evasion import SaliencyMapMethod

    classifier = _as_art(model, preprocessing_defences, probabilities=True, x=x)
    onehot = np.eye(classifier.nb_classes, dtype=np.float32)[np.asarray(targets)]
    attack = SaliencyMapMethod(classifier, theta=theta, gamma=gamma, batch_size=batch_size, verbose=False)
    return attack.generate(np.asarray(x, np.float32), y=onehot).astype(np.float32)


def random_targets(labels: np.ndarray, nb_classes: int, seed: int = 0) -> np.ndarray:
    """A target class per image, uniform over the classes other than its label (seeded;
    ART's own draw uses NumPy's global state)."""
    labels = np.asarray(labels)
    shift = np.random.default_rng(seed).integers(1, nb_classes, len(labels))
    return (labels + shift) % nb_classes


def _as_art(model, preprocessing_defences, probabilities=False, x=None):
    """An ART classifier from a Keras model, a plain callable images -> logits (its class count read off
    one call on x[:1]) or an ART classifier (used as it is)."""
    if isinstance(model, keras.Model):
        return art_classifier(model, preprocessing_defences=preprocessing_defences, probabilities=probabilities)
    if not hasattr(model, "nb_classes") and callable(model) and x is not None:  # a plain callable
        import tensorflow as tf

        from blurnet_tf.attacks.logits_model import logits_fn

        classes = int(logits_fn(model)(tf.constant(np.asarray(x[:1], np.float32))).shape[-1])
        return art_classifier(model, nb_classes=classes, input_shape=np.shape(x)[1:],
                              preprocessing_defences=preprocessing_defences, probabilities=probabilities)
    if preprocessing_defences is not None:
        raise ValueError("preprocessing_defences go with a Keras model; an ART classifier carries its own")
    return model
