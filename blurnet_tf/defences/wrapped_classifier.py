"""The deployable classifier inside a defence's training wrapper."""

from blurnet_tf.defences.adversarial_training import AdversarialTraining
from blurnet_tf.defences.defendpp import DefendPP


def classifier_of(model):
    """The plain Keras classifier inside a training wrapper (or the model itself)."""
    return model.classifier if isinstance(model, (AdversarialTraining, DefendPP)) else model
