"""The deployable classifier inside a defence's training wrapper."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blurnet_tf.defences.adversarial_training import AdversarialTraining
from blurnet_tf.defences.defendpp import DefendPP

if TYPE_CHECKING:
    import keras


def classifier_of(model: keras.Model) -> keras.Model:
    """The plain Keras classifier inside a training wrapper (or the model itself).

    Parameters
    ----------
    model : keras.Model
        An AdversarialTraining or DefendPP wrapper, or a plain classifier.

    Returns
    -------
    keras.Model
        The wrapper's `classifier`, or `model` unchanged.
    """
    return model.classifier if isinstance(model, (AdversarialTraining, DefendPP)) else model
