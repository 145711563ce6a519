"""Defend++ (Liu et al., ACM MM 2020): DNN bottleneck reinforcement.

An auto-encoder shares the classifier's encoding blocks and is trained jointly with it on clean
images (§3.3-3.4); at inference, and in every exported file, the classifier is used alone.

Decoder (Fig. 4, eq. 2): the coarsest output Ĩ^{M-1} comes from a stack of stride-2 transposed convolutions
on the bottleneck (D_{M-1}); every finer scale is Ĩ^m = U(Ĩ^{m+1}) + H(E_m), with U a 3x3 conv + stride-2
transposed conv to C image channels and H a 2-layer 3x3 residual block with a 1x1 skip, fed by the encoder's
feature map at that scale; hidden layers are batch-normalised where the encoder is (ResNet-18; see
`defendpp_decoder`). Targets I^m keep the top-left W/2^m x H/2^m DCT coefficients of the image (§3.3).
Loss (eq. 3): L = L_cls + ||Ĩ^0 - I^0||² + λ Σ_{m≥1} ||Ĩ^m - I^m||², λ = 0.01, as pixel-wise MSE.

How the encoders map to scales (`TAPS`; no scale below 7x7, as the paper requires):
- mnist_resnet (28x28): scales 28/14/7. H_0 <- block0 (28x28), H_1 <- block1 (14x14); D_2 decodes the bottleneck
  block3 (4x4) to 7x7 (one transposed conv to 8x8, cropped). As in the paper's ResNet-18, all four blocks are shared.
- mnist_resnet18 (the paper's ResNet-18): the same from stage1/stage2/stage4 (stage3, 7x7, is inside E_2). Not
  28/14/7/4: no target may be below 7x7 (§3.4), and U's stride-2 'same' deconv maps 4 -> 8, not 7 (eq. 2 can't add).
- lisa_cnn (32x32): scales 32/16/8. The LISA-CNN has no feature map at 32x32 (conv1 has stride 2)
  nor at 8x8 (conv2 is 'valid': 6x6), so H_1 <- relu1 (16x16), H_0 <- relu1 upsampled x2
  (nearest), and D_2 decodes the bottleneck relu3 (2x2) by two transposed convs (2->4->8). All
  three convolutions are shared; conv2 is reached through the bottleneck.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from blurnet_tf.dct import low_pass_downsample
from blurnet_tf.deprecation import no_longer_needed
from blurnet_tf.defences.defendpp_decoder import DECODERS, decode

PAPER_LOW_PASS_WEIGHT = 0.01  # λ of eq. 3
SCHEDULES = ("joint", "alternating")


@dataclasses.dataclass(frozen=True)
class EncoderTaps:
    """Where the decoder reads a classifier, by layer name (presets in `TAPS`).

    Parameters
    ----------
    sizes : tuple[int, ...]
        Target sizes, finest (the input's) first, halving at each scale.
    skips : tuple[str, ...]
        The layer feeding H at every scale but the coarsest.
    bottleneck : str
        The bottleneck layer D_{M-1} decodes.
    """

    sizes: tuple[int, ...]
    skips: tuple[str, ...]
    bottleneck: str


TAPS = {
    "mnist_resnet": EncoderTaps(sizes=(28, 14, 7), skips=("block0", "block1"), bottleneck="block3"),
    "mnist_resnet18": EncoderTaps(sizes=(28, 14, 7), skips=("stage1", "stage2"), bottleneck="stage4"),
    "lisa_cnn": EncoderTaps(sizes=(32, 16, 8), skips=("relu1", "relu1"), bottleneck="relu3"),
}


def check_taps(classifier: keras.Model, taps: EncoderTaps) -> EncoderTaps:
    """`taps` for this classifier, or a ValueError naming what does not fit: layers it lacks, a
    finest size other than its input's, sizes not halving, one skip per scale but the coarsest."""
    taps = EncoderTaps(tuple(int(v) for v in taps.sizes), tuple(taps.skips), str(taps.bottleneck))
    missing = sorted({*taps.skips, taps.bottleneck} - {layer.name for layer in classifier.layers})
    if missing:
        raise ValueError(f"Defend++ taps name layers {classifier.name!r} does not have: {missing}")
    if taps.sizes[0] != classifier.input_shape[1] or any(b * 2 != a for a, b in zip(taps.sizes, taps.sizes[1:])):
        raise ValueError(
            f"Defend++ taps sizes must start at the input size {classifier.input_shape[1]} and halve "
            f"at each scale, got {list(taps.sizes)}"
        )
    if len(taps.skips) != len(taps.sizes) - 1:
        raise ValueError(
            f"Defend++ needs one skip layer per scale but the coarsest ({len(taps.sizes) - 1}), got {list(taps.skips)}"
        )
    return taps


def taps_for(classifier: keras.Model) -> EncoderTaps:
    """The preset EncoderTaps whose layers the classifier has and whose finest size is its input's."""
    names = {layer.name for layer in classifier.layers}
    for taps in TAPS.values():
        if {*taps.skips, taps.bottleneck} <= names and classifier.input_shape[1] == taps.sizes[0]:
            return taps
    raise ValueError(
        f"Defend++ has no encoder mapping for model {classifier.name!r} "
        f"(presets: {', '.join(TAPS)}); pass taps=EncoderTaps(sizes, skips, bottleneck) by layer name"
    )


def low_pass_targets(images: tf.Tensor | np.ndarray, sizes: tuple[int, ...]) -> list[tf.Tensor]:
    """[I^0, ..., I^{M-1}]: I^m holds the image's top-left sizes[m]^2 DCT coefficients, as a
    sizes[m] x sizes[m] image (the project's one DCT, `blurnet_tf.dct`). I^0 is the image itself."""
    images = tf.convert_to_tensor(images, tf.float32)
    if sizes[0] != images.shape[-3]:
        raise ValueError(f"finest target size {sizes[0]} differs from the image size {images.shape[-3]}")
    return [images] + [low_pass_downsample(images, s) for s in sizes[1:]]


def reconstruction_loss(
    outputs: list[tf.Tensor], targets: list[tf.Tensor], low_pass_weight: float = PAPER_LOW_PASS_WEIGHT
) -> tf.Tensor:
    """Eq. 3 as pixel-wise MSE: mse(Ĩ^0, I^0) + λ Σ_{m≥1} mse(Ĩ^m, I^m)."""
    mse = [tf.reduce_mean(tf.square(o - t)) for o, t in zip(outputs, targets)]
    return mse[0] + low_pass_weight * tf.add_n(mse[1:]) if len(mse) > 1 else mse[0]


@keras.saving.register_keras_serializable("blurnet_tf")
class FeatureNoise(layers.Layer):
    """'+GN': Gaussian noise on the representations the decoder reads, in training only.

    Parameters
    ----------
    sigma : float
        Noise std as a multiple of the feature map's own (so the encoder cannot outgrow it); 0: none.
    """

    def __init__(self, sigma: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sigma = float(sigma)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        if not training or self.sigma == 0:
            return x
        scale = tf.stop_gradient(tf.math.reduce_std(x))
        return x + self.sigma * scale * tf.random.normal(tf.shape(x))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sigma": self.sigma}


def build_joint_model(
    classifier: keras.Model, taps: EncoderTaps, decoder: str = "pyramid", gn_sigma: float = 0.0
) -> keras.Model:
    """One functional graph image -> [logits, Ĩ^0, ..., Ĩ^{M-1}] whose encoder layers ARE the
    classifier's (shared objects, so every update reaches the classifier)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    channels = classifier.input_shape[-1]
    tapped = {name: classifier.get_layer(name).output for name in sorted({*taps.skips, taps.bottleneck})}
    if gn_sigma:
        tapped = {name: FeatureNoise(gn_sigma, name=f"gn_{name}")(t) for name, t in tapped.items()}
    skips = [tapped[name] for name in taps.skips]
    norm = any(isinstance(layer, layers.BatchNormalization) for layer in classifier.layers)  # our encoders are flat
    outputs = decode(decoder, skips, tapped[taps.bottleneck], taps.sizes, channels, norm)
    return keras.Model(classifier.input, [classifier.output, *outputs], name=f"{classifier.name}_defendpp")


@keras.saving.register_keras_serializable("blurnet_tf")
class DefendPP(keras.Model):
    """Wraps a classifier for Defend++ training; calling it (and `classifier_of`) is the classifier.

    The weights are shared, so the paper's copying of encoder weights between the networks is implicit.

    Parameters
    ----------
    classifier : keras.Model
        Images [N, H, W, C] -> logits [N, classes]; its encoder layers are the auto-encoder's.
    decoder : str
        One of DECODERS: 'pyramid' (Fig. 4, eq. 2) or 'hourglass'.
    low_pass_weight : float
        λ of eq. 3, the weight of the low-pass scales m >= 1 (paper: 0.01).
    reconstruction_weight : float
        Weight of L_rect against L_cls.
    gn_sigma : float
        '+GN': FeatureNoise sigma on the maps the decoder reads; 0 for none.
    schedule : str
        'joint': L_cls + L_rect from the first epoch; 'alternating' (§3.4): `alternating_cycles` cycles of
        `alternating_epochs` auto-encoder-only epochs then as many classifier-only epochs, then joint.
    alternating_cycles, alternating_epochs : int
        Cycles of the alternating phase, and epochs of each half-cycle.
    taps : EncoderTaps or dict or None
        Where the decoder reads the classifier (or its fields as a dict); None: one of the TAPS presets.

    Raises
    ------
    ValueError
        If schedule or decoder is unknown, or taps do not fit the classifier (or no preset does).
    """

    def __init__(
        self,
        classifier: keras.Model,
        decoder: str = "pyramid",
        low_pass_weight: float = PAPER_LOW_PASS_WEIGHT,
        reconstruction_weight: float = 1.0,
        gn_sigma: float = 0.0,
        schedule: str = "joint",
        alternating_cycles: int = 2,
        alternating_epochs: int = 1,
        taps: EncoderTaps | dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        # Any classifier, given its taps by layer name; the three built-in architectures are presets.
        self.classifier, self.explicit_taps = classifier, taps is not None
        self.taps = (
            check_taps(classifier, EncoderTaps(**taps) if isinstance(taps, dict) else taps)
            if taps
            else taps_for(classifier)
        )
        self.joint = build_joint_model(classifier, self.taps, decoder, gn_sigma)
        self.decoder, self.schedule, self.gn_sigma = decoder, schedule, float(gn_sigma)
        self.low_pass_weight, self.reconstruction_weight = float(low_pass_weight), float(reconstruction_weight)
        self.alternating_cycles, self.alternating_epochs = int(alternating_cycles), int(alternating_epochs)
        # (weight of L_cls, weight of L_rect), set per epoch by the schedule callback.
        self.loss_weights = self.add_weight(shape=(2,), initializer="ones", trainable=False, name="loss_weights")
        self.classification_tracker = keras.metrics.Mean(name="classification_loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.built = True  # every part is a built functional model (lets the optimizer state save)

    @property
    def autoencoder(self) -> keras.Model:
        """image -> [Ĩ^0, ..., Ĩ^{M-1}] (the same layers; for figures, never for inference)."""
        return keras.Model(self.joint.input, self.joint.outputs[1:], name=f"{self.classifier.name}_autoencoder")

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.classifier(inputs, training=training)

    def phase_weights(self, epoch: int) -> tuple[float, float]:
        """(w_cls, w_rect) for a 0-based epoch under the schedule."""
        cycle = 2 * self.alternating_epochs
        if self.schedule == "alternating" and epoch < self.alternating_cycles * cycle:
            return (0.0, 1.0) if epoch % cycle < self.alternating_epochs else (1.0, 0.0)
        return (1.0, 1.0)

    training_callbacks = no_longer_needed("training_callbacks", "fit adds the schedule's callback itself")

    def fit(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        """keras.Model.fit with the schedule's callback always on ('alternating' must never train jointly)."""
        callbacks = [c for c in callbacks or [] if not isinstance(c, _LossSchedule)] + [_LossSchedule()]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def losses_on(
        self, x: tf.Tensor, y: tf.Tensor, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """(total, L_cls incl. the model's add_loss terms, L_rect, logits)."""
        logits, *recon = self.joint(x, training=training)
        cls = self.compute_loss(x=x, y=y, y_pred=logits, training=training)
        rec = reconstruction_loss(recon, low_pass_targets(x, self.taps.sizes), self.low_pass_weight)
        total = self.loss_weights[0] * cls + self.loss_weights[1] * self.reconstruction_weight * rec
        return total, cls, rec, logits

    def _report(self, y, total, cls, rec, logits):
        for metric in self.metrics:
            if metric is self.classification_tracker:
                metric.update_state(cls)
            elif metric is self.reconstruction_tracker:
                metric.update_state(rec)
            elif metric.name == "loss":
                metric.update_state(total)
            else:
                metric.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: tuple[tf.Tensor, ...]) -> dict[str, tf.Tensor]:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            total, cls, rec, logits = self.losses_on(x, y, training=True)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return self._report(y, total, cls, rec, logits)

    def test_step(self, data: tuple[tf.Tensor, ...]) -> dict[str, tf.Tensor]:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._report(y, *self.losses_on(x, y, training=False))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "decoder": self.decoder,
            "low_pass_weight": self.low_pass_weight,
            "reconstruction_weight": self.reconstruction_weight,
            "gn_sigma": self.gn_sigma,
            "schedule": self.schedule,
            "alternating_cycles": self.alternating_cycles,
            "alternating_epochs": self.alternating_epochs,
            **({"taps": dataclasses.asdict(self.taps)} if self.explicit_taps else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DefendPP:
        return cls(**{**config, "classifier": keras.saving.deserialize_keras_object(config["classifier"])})


class _LossSchedule(keras.callbacks.Callback):
    """Sets DefendPP.loss_weights at the start of every epoch (so a resumed run lands in the same phase)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.loss_weights.assign(self.model.phase_weights(epoch))
