"""RP2 (Eykholt et al. 2018) as BlurNet runs it, in one tf.function (BlurNet eq. 1):

    argmin_delta  lam * ||M_x delta||_p + NPS(M_x delta) + J(f(clip(x_i + M_x delta, 0, 1)), y*)

One noise tensor per (lambda, target), shared by all images, optimised with Adam. Every
(lambda, target, image) triple is one row of a single batch, so a full 17-target sweep is one
call and one model evaluation per epoch. Each (lambda, target) problem is independent: the
summed loss gives each noise exactly its own gradient and Adam acts elementwise, so the result
equals separate runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
import typing
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf.attacks.logits_model import logits_fn
from blurnet_tf.deprecation import renamed_keywords
from blurnet_tf.attacks.physical import PhysicalConditions, sample_views
from blurnet_tf.dct import low_pass
from blurnet_tf.models.lisa_cnn import FIRST_LAYER, layer_output_model

_TINY = 1e-12


@dataclasses.dataclass
class RP2Result:
    """What `rp2` returns for L lambdas, T targets and N images.

    The noises, adversarial images and predictions of every (lambda, target), and the history.

    Attributes
    ----------
    noise : np.ndarray
        [L, T, H, W, C] the final noise of each (lambda, target), clipped.
    adversarial : np.ndarray
        [L, T, N, H, W, C] the adversarial images.
    predictions : np.ndarray
        [L, T, N] the model's classes on the adversarial images.
    clean_predictions : np.ndarray
        [N] the model's classes on the clean images.
    history : dict[str, np.ndarray]
        'loss', 'misclassified', 'targeted' each [epochs, L, T] (percent for the last two, measured
        before each epoch's update, as the original printout) and 'extra_loss' [epochs] (the
        adaptive term's mean over all first-layer maps; 0 without extra_loss).
    lambdas : np.ndarray
        [L] the lambdas swept, float32.
    targets : np.ndarray
        [T] the target classes, int32.
    """

    noise: np.ndarray
    adversarial: np.ndarray
    predictions: np.ndarray
    clean_predictions: np.ndarray
    history: dict[str, np.ndarray]
    lambdas: np.ndarray
    targets: np.ndarray

    @property
    def success(self) -> np.ndarray:
        """[L, T, N] bool: the prediction moved off the clean one (the paper's ASR counts these), as every
        attack's result has a success mask."""
        return self.predictions != self.clean_predictions[None, None]


def low_frequency(dim: int = 16) -> Callable[[tf.Tensor], tf.Tensor]:
    """The low-frequency transform of BlurNet eq. 8, for `rp2(transform=...)`.

    delta' = IDCT(M_dim * DCT(M_x delta)) keeps the top-left dim x dim DCT coefficients.

    Parameters
    ----------
    dim : int
        The side of the kept block of coefficients.

    Returns
    -------
    Callable[[tf.Tensor], tf.Tensor]
        Masked noise [..., H, W, C] -> its low-pass version, same shape.
    """
    return lambda masked_noise: low_pass(masked_noise, dim)


def masked_norm(masked: tf.Tensor, norm: str) -> tf.Tensor:
    """||M delta||_p per leading index; the L2 norm stays differentiable at zero."""
    axes = (-3, -2, -1)
    if norm == "l2":
        return tf.sqrt(tf.reduce_sum(tf.square(masked), axis=axes) + _TINY)
    if norm == "l1":
        return tf.reduce_sum(tf.abs(masked), axis=axes)
    raise ValueError(f"unknown norm {norm!r}: use l2 or l1")


def nps(masked: tf.Tensor, colors: tf.Tensor) -> tf.Tensor:
    """Non-printability score as the original code: sum over pixels of prod over colours of
    ||delta_pixel - p||_2 (over the masked noise, zeros outside the mask included)."""
    diff = masked[..., None, :] - colors  # [..., H, W, P, 3]
    dist = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1) + _TINY)
    return tf.reduce_sum(tf.reduce_prod(dist, axis=-1), axis=(-2, -1))


def _check(images, mask, lam, targets, epochs, lr, norm, noise_clip=20.0, seed=0, physical=None):
    """(lambdas, targets) as arrays, or one ValueError naming the setting that is out of range."""
    lambdas = np.atleast_1d(np.asarray(lam, np.float64)).astype(np.float32)
    targets = np.atleast_1d(np.asarray(targets))
    if lambdas.size == 0 or not np.all(np.isfinite(lambdas)) or (lambdas < 0).any():
        raise ValueError(f"lam must be finite numbers >= 0, got {np.asarray(lam).tolist()}")
    if targets.size == 0 or not np.issubdtype(targets.dtype, np.integer) or (targets < 0).any():
        raise ValueError(f"targets must be class indices >= 0, got {targets.tolist()}")
    m = np.asarray(mask)
    if m.shape != np.shape(images)[1:] and m.shape[:2] != np.shape(images)[1:3]:
        raise ValueError(f"mask must be shaped like one image {np.shape(images)[1:]}, got {m.shape}")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("mask must hold only 0 (image) and 1 (sticker); threshold a grey mask first")
    if not (isinstance(epochs, (int, np.integer)) and epochs >= 0):  # 0: the initial noise only
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    for name, value in (("lr", lr), ("noise_clip", noise_clip)):  # a NaN clip: every adversarial image NaN
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be l1 or l2, got {norm!r}")
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < 2**31):
        raise ValueError(f"seed must be an integer in 0..{2**31 - 1}, got {seed!r}")  # a TensorFlow int32
    if physical is not None and not isinstance(physical, PhysicalConditions):
        raise ValueError(f"physical must be PhysicalConditions or None, got {physical!r}")
    return lambdas, targets.astype(np.int32)


@renamed_keywords(images="x", input_clip="clip_values")
def rp2(
    model: keras.Model | Callable[..., tf.Tensor],
    x: np.ndarray,
    mask: np.ndarray,
    targets: int | Sequence[int] | np.ndarray,
    *,
    lam: float | Sequence[float],
    epochs: int = 300,
    lr: float = 0.1,
    norm: Literal["l1", "l2"] = "l2",
    nps_colors: np.ndarray | None = None,
    noise_init: Literal["uniform", "zeros"] | Sequence[float] = "uniform",
    noise_clip: float = 20.0,
    clip_values: tuple[float, float] = (0.0, 1.0),
    transform: Callable[[tf.Tensor], tf.Tensor] | None = None,
    extra_loss: Callable[[tf.Tensor], tf.Tensor] | None = None,
    feature_layer: str = FIRST_LAYER,
    physical: PhysicalConditions | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    chunk: int | None = None,
) -> RP2Result:
    """Runs RP2 (BlurNet eq. 1) for every lambda in `lam` and every target in `targets` at once.

    One noise per (lambda, target), shared by all images, optimised with Adam; the whole sweep is
    one batch per epoch.

    Parameters
    ----------
    model : keras.Model | Callable[..., tf.Tensor]
        Keras classifier returning logits, or (without extra_loss) any callable [N, H, W, C] -> logits.
    x : np.ndarray
        [N, H, W, C] images in [0, 1].
    mask : np.ndarray
        [H, W, C] sticker mask M_x of 0 (image) and 1 (sticker).
    targets : int | Sequence[int] | np.ndarray
        [T] target classes y* (or one int).
    lam : float | Sequence[float]
        The weight λ of the noise norm: a float or a sequence (swept in the same call).
    epochs : int
        Adam steps (0: the initial noise only).
    lr : float
        Adam's learning rate.
    norm : Literal["l1", "l2"]
        The norm p of ||M_x delta||_p.
    nps_colors : np.ndarray | None
        [P, 3] printable colours for the non-printability score (None: no NPS term).
    noise_init : Literal["uniform", "zeros"] | Sequence[float]
        'uniform' (U(0,1), the original), 'zeros', or an RGB triplet in [0, 1].
    noise_clip : float
        The noise is clipped to [-noise_clip, noise_clip].
    clip_values : tuple[float, float]
        The box the adversarial images are clipped to.
    transform : Callable[[tf.Tensor], tf.Tensor] | None
        Maps the masked noise [L, T, H, W, C] before it is added (e.g. low_frequency(16)).
    extra_loss : Callable[[tf.Tensor], tf.Tensor] | None
        A function of the maps F [L*T*N, H', W', K] (k*L*T*N under `physical`) of `feature_layer` on the
        adversarial images (e.g. the defence's own regulariser, eq. 9-11) to a scalar, added unweighted.
    feature_layer : str
        The layer extra_loss reads (the LISA-CNN's first layer by default).
    physical : PhysicalConditions | None
        Optimise in expectation over viewing conditions (EOT): each step scores `physical.samples` views
        of every adversarial image drawn from it (seeded by (seed, epoch)); the history is then over the
        views. None: the digital attack, exactly as without it. `transform` acts on the noise, this on
        the stickered sign. A victim's views depend on (seed, epoch) only, not on the targets or λ beside it.
        The history is then over the views (each view's prediction against the clean photograph's); the
        result's images and predictions are always the digital ones.
    seed : int
        Seed of the uniform initial noise.
    progress : Callable[[int, int], None] | None
        Called as progress(epochs_done, epochs) between chunks of `chunk` epochs.
    chunk : int | None
        Epochs per tf.function call (default: about 20 chunks).

    Returns
    -------
    RP2Result
        Noises, adversarial images, predictions and the per-epoch history.

    Raises
    ------
    ValueError
        One naming the setting: a non-finite or negative λ, a mask not of 0 and 1, a target not
        a class of the model, epochs < 0, lr or noise_clip not > 0, a norm not l1 / l2, extra_loss without a
        Keras model.
    """
    images, input_clip = x, clip_values
    lambdas, target_ids = _check(images, mask, lam, targets, epochs, lr, norm, noise_clip, seed, physical)
    images = tf.constant(images, tf.float32)
    mask = tf.constant(mask, tf.float32)
    L, T, N = len(lambdas), len(target_ids), int(images.shape[0])
    shape = (L, T) + tuple(images.shape[1:])
    if noise_init == "uniform":
        init = tf.random.stateless_uniform(shape, seed=[seed, 0])
    elif noise_init == "zeros":
        init = tf.zeros(shape)
    else:
        init = tf.broadcast_to(tf.constant(noise_init, tf.float32), shape)
    noise = tf.Variable(init, name="rp2_noise")
    optimizer = keras.optimizers.Adam(lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    optimizer.build([noise])
    # model may be any callable on a batch (e.g. a defence's BPDA/EOT stand-in) unless extra_loss
    # needs its first-layer maps.
    if extra_loss and not isinstance(model, keras.Model):
        raise ValueError("extra_loss reads the maps of feature_layer: it needs a Keras model, not a plain callable")
    if extra_loss:  # a Keras model (checked above): its logits and the maps it reads, from one input tensor
        keras_model = typing.cast(keras.Model, model)
        inputs = keras_model.inputs[0] if len(keras_model.inputs) == 1 else keras_model.inputs
        net = logits_fn(
            keras.Model(inputs, [keras_model.output, layer_output_model(keras_model, feature_layer).output])
        )
    else:
        net = logits_fn(model)
    lam_t = tf.constant(lambdas)[:, None]
    target_rows = tf.constant(np.broadcast_to(target_ids[None, :, None], (L, T, N)).reshape(-1))
    colors = None if nps_colors is None else tf.constant(nps_colors, tf.float32)
    clean_logits = net(images)[0] if extra_loss else net(images)
    if target_ids.max() >= clean_logits.shape[-1]:
        raise ValueError(
            f"targets must be classes of the model (0..{clean_logits.shape[-1] - 1}), got {target_ids.tolist()}"
        )
    clean_pred = tf.argmax(clean_logits, axis=-1, output_type=tf.int32)

    views = 1 if physical is None else physical.samples

    def forward(noise_value, epoch=None):  # epoch given: seen under conditions drawn for it (EOT)
        clipped = tf.clip_by_value(noise_value, -noise_clip, noise_clip)
        masked = mask * clipped  # [L,T,H,W,C]
        perturbation = transform(masked) if transform is not None else masked
        adv = tf.clip_by_value(images + perturbation[:, :, None], *input_clip)  # [L,T,N,H,W,C]
        flat = tf.reshape(adv, (-1,) + tuple(images.shape[1:]))
        k = 1
        if physical is not None and epoch is not None:
            step_seed = tf.stack([tf.constant(seed, tf.int32), epoch])
            flat, k = sample_views(flat, physical, step_seed, copies=L * T), views
        out = net(flat)
        logits = tf.cast(out[0] if extra_loss else out, tf.float32)  # losses stay float32 under bf16
        if k == 1:  # the digital attack: the mean over victims, as it always was
            ce = tf.keras.losses.sparse_categorical_crossentropy(target_rows, logits, from_logits=True)
            expected = tf.reduce_mean(tf.reshape(ce, (L, T, N)), axis=-1)
        else:  # in expectation over the k views of every victim
            ce = tf.keras.losses.sparse_categorical_crossentropy(tf.tile(target_rows, [k]), logits, from_logits=True)
            expected = tf.reduce_mean(tf.reshape(ce, (k, L, T, N)), axis=(0, 3))
        loss = expected + lam_t * masked_norm(masked, norm)
        if colors is not None:
            loss += nps(masked, colors)
        total = tf.reduce_sum(loss)
        extra = tf.zeros(())
        if extra_loss:  # mean over all L*T*N*K maps times L*T = the sum of the per-problem means
            extra = extra_loss(tf.cast(out[1], tf.float32))
            total += L * T * extra
        pred = tf.reshape(tf.argmax(logits, axis=-1, output_type=tf.int32), (k, L, T, N))
        return total, loss, pred, adv, clipped, extra

    chunk = int(chunk or max(1, -(-epochs // 20)))

    @tf.function(input_signature=[tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.int32)])
    def optimise(steps, done_before):  # one chunk of epochs: the hot loop never leaves the graph inside it
        hist = [tf.TensorArray(tf.float32, size=steps) for _ in range(4)]
        for epoch in tf.range(steps):
            with tf.GradientTape() as tape:
                total, loss, pred, _, _, extra = forward(noise, done_before + epoch)
            optimizer.apply_gradients([(tape.gradient(total, noise), noise)])
            mis = 100.0 * tf.reduce_mean(tf.cast(pred != clean_pred, tf.float32), axis=(0, 3))
            hit = 100.0 * tf.reduce_mean(tf.cast(pred == tf.constant(target_ids)[:, None], tf.float32), axis=(0, 3))
            hist = [h.write(epoch, v) for h, v in zip(hist, (loss, mis, hit, extra))]
        return [h.stack() for h in hist]

    chunks, done = [], 0
    while done < epochs:
        steps = min(chunk, epochs - done)
        chunks.append([h.numpy() for h in optimise(tf.constant(steps), tf.constant(done))])
        done += steps
        if progress is not None:
            progress(done, epochs)
    loss_h, mis_h, hit_h, extra_h = [np.concatenate(h) for h in zip(*chunks)] if chunks else _empty_history(L, T)
    _, _, pred, adv, clipped, _ = tf.function(forward)(noise)  # digital: no views

    return RP2Result(
        noise=clipped.numpy(),
        adversarial=adv.numpy(),
        predictions=pred.numpy()[0],
        clean_predictions=clean_pred.numpy(),
        history={"loss": loss_h, "misclassified": mis_h, "targeted": hit_h, "extra_loss": extra_h},
        lambdas=lambdas,
        targets=target_ids,
    )


def _empty_history(L, T):
    return tuple(np.zeros((0, L, T), np.float32) for _ in range(3)) + (np.zeros((0,), np.float32),)
