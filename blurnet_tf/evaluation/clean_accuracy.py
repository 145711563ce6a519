"""Clean accuracy: the track-held-out test split and the 40 victim stop signs."""

from blurnet_tf.data import CLASS_NAMES, STOP
from blurnet_tf.evaluation.metrics import accuracy, per_class_accuracy, predict_classes


def evaluate_clean(model, test, victims):
    """Legit accuracy (test split), per-class accuracy, and accuracy on the clean victims."""
    test_pred = predict_classes(model, test.images)
    victim_pred = predict_classes(model, victims)
    return {
        "legit_accuracy": accuracy(test_pred, test.labels),
        "test_images": int(len(test.labels)),
        "per_class_accuracy": per_class_accuracy(test_pred, test.labels, CLASS_NAMES),
        "victim_accuracy": accuracy(victim_pred, STOP),
        "victims_correct": int((victim_pred == STOP).sum()),
        "victim_predictions": victim_pred.tolist(),
    }
