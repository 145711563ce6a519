"""Accuracy and the RP2 attack metrics (BlurNet §IV; RP2)."""

import numpy as np


def predict_classes(model, images, batch_size=512):
    """Arg-max class of the model's logits, in inference mode."""
    logits = model.predict(images, batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=-1)


def accuracy(predictions, labels):
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def correctly_classified(model, images, labels, n, seed=0):
    """Up to n (image, label) pairs the model gets right, drawn with a fixed seed, in index order."""
    pred = predict_classes(model, images)
    idx = np.flatnonzero(pred == labels)
    idx = np.sort(np.random.default_rng(seed).permutation(idx)[:n])
    return images[idx], labels[idx]


def per_class_accuracy(predictions, labels, class_names):
    out = {}
    for c in np.unique(labels):
        sel = labels == c
        out[class_names[c]] = float(np.mean(predictions[sel] == c))
    return out


def attack_success_rate(clean_pred, adv_pred):
    """ASR = mean 1[F(x) != F(x_adv)]: untargeted count against the clean prediction."""
    return float(np.mean(np.asarray(clean_pred) != np.asarray(adv_pred)))


def targeted_success(adv_pred, target):
    return float(np.mean(np.asarray(adv_pred) == target))


def l2_dissimilarity(clean, adversarial):
    """mean_n ||x_n - x_adv,n||_2 / ||x_n||_2 (full paper's definition)."""
    clean = np.asarray(clean, np.float64).reshape(len(clean), -1)
    adversarial = np.asarray(adversarial, np.float64).reshape(len(adversarial), -1)
    return float(np.mean(np.linalg.norm(clean - adversarial, axis=1) / np.linalg.norm(clean, axis=1)))


def apply_sticker(images, mask, noise, noise_clip=20.0, input_clip=(0.0, 1.0)):
    """clip(x + mask * clip(noise, -c, c), lo, hi): the RP2 adversarial image."""
    noise = np.clip(noise, -noise_clip, noise_clip)
    return np.clip(images + mask * noise, *input_clip).astype(np.float32)
