"""Clean accuracy: the track-held-out test split and the 40 victim stop signs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from blurnet_tf.data import CLASS_NAMES, STOP
from blurnet_tf.evaluation.metrics import accuracy, per_class_accuracy, predict_classes

if TYPE_CHECKING:
    import keras

    from blurnet_tf.data import LisaData


def evaluate_clean(model: keras.Model, test: LisaData, victims: np.ndarray) -> dict[str, Any]:
    """Legit accuracy (test split), per-class accuracy, each test track's [correct, images] (for intervals that
    resample tracks: a track's crops are near-duplicates), and accuracy on the clean victims."""
    test_pred = predict_classes(model, test.images)
    victim_pred = predict_classes(model, victims)
    right = test_pred == np.asarray(test.labels)
    return {
        "legit_accuracy": accuracy(test_pred, test.labels),
        "test_images": int(len(test.labels)),
        "per_class_accuracy": per_class_accuracy(test_pred, test.labels, CLASS_NAMES),
        "correct_by_track": {
            str(t): [int(right[test.tracks == t].sum()), int((test.tracks == t).sum())] for t in np.unique(test.tracks)
        },
        "victim_accuracy": accuracy(victim_pred, STOP),
        "victims_correct": int((victim_pred == STOP).sum()),
        "victim_predictions": victim_pred.tolist(),
    }
