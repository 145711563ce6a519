"""The physical channel of RP2's threat model: a stickered sign seen at another angle, distance and light.

A condition maps an image x [B, H, W, C] in [0, 1] to what a camera would see (Eykholt et al., §4: the
sticker must survive "varying distances and angles"; Athalye et al.'s expectation over transformation):

    x' = clip( Q( N( c · B_σ( S_s( W_{θ,ρ}(x) ) ) + b ) ), 0, 1 )

W_{θ,ρ}: the sign's plane turned by θ about its vertical axis (foreshortening; a pinhole camera at focal
distance 2W, so θ = 0 is the identity) and rolled by ρ in the image plane, as one homography; pixels
past the edge repeat it. S_s: the sign seen from s times further than the crop's own distance, i.e.
resampled down to round(s' H) pixels (s' = 1/s, antialiased) and back up. B_σ: defocus, a Gaussian
of σ pixels. c, b: contrast and brightness. N: sensor noise N(0, n²). Q: JPEG at quality q, with the
straight-through gradient (the identity: JPEG has none). Every step is differentiable in x
(TensorFlow's projective transform and antialiased resize carry gradients); the sticker moves with
the sign because the stickered image is transformed whole.

`PhysicalConditions` is the distribution RP2 optimises over (`rp2(physical=...)`, k samples a step,
drawn from a stateless seed); `STATIONARY_GRID` is the held-out test: fixed distances × angles × light,
as RP2's lab test (5' to 40', 0° to 30°) is fixed. Keras' preprocessing layers (RandomPerspective,
RandomZoom, ...) draw their own randomness from a SeedGenerator and zoom by cropping rather than by
losing resolution; written here so that a step's draws come from (seed, epoch) and the same
conditions apply in the attack and in the test.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from blurnet_tf.ranges import MAX_VIEWS, is_count, is_number

__all__ = ["PhysicalConditions", "Condition", "STATIONARY_GRID", "see", "sample_views"]

_FOCAL = 2.0  # the camera's focal distance, in image widths: 30° of yaw narrows the far edge by about a fifth
MAX_YAW = 70.0  # degrees; past atan(2 _FOCAL), about 76°, the sign's far edge would cross the horizon


def _refuse_first_wrong(settings: object, checks: Sequence[tuple[str, bool, str]]) -> None:
    """A ValueError naming the first field whose check failed: "<field>: expected <what>, got <value>"."""
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"{name}: expected {expected}, got {getattr(settings, name)!r}")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One viewing condition (the stationary test's cell).

    Attributes
    ----------
    distance : float
        How many times further than the crop's own distance the sign is seen (1: as photographed).
    yaw : float
        Degrees the sign's plane is turned about its vertical axis.
    roll : float
        Degrees of in-plane rotation.
    brightness : float
        Added to every pixel.
    contrast : float
        Multiplies every pixel.
    blur : float
        Gaussian defocus, σ in pixels (0: none).
    """

    distance: float = 1.0
    yaw: float = 0.0
    roll: float = 0.0
    brightness: float = 0.0
    contrast: float = 1.0
    blur: float = 0.0

    def __post_init__(self) -> None:
        checks = (
            ("distance", is_number(self.distance) and self.distance >= 1, "a number >= 1"),
            ("yaw", is_number(self.yaw) and abs(self.yaw) <= MAX_YAW, f"degrees in [-{MAX_YAW:g}, {MAX_YAW:g}]"),
            ("roll", is_number(self.roll), "a finite number of degrees"),
            ("brightness", is_number(self.brightness) and abs(self.brightness) <= 1, "a number in [-1, 1]"),
            ("contrast", is_number(self.contrast) and self.contrast > 0, "a number > 0"),
            ("blur", is_number(self.blur) and self.blur >= 0, "a number >= 0"),
        )
        _refuse_first_wrong(self, checks)

    @property
    def name(self) -> str:
        extra = [
            f"{k} {v:+g}" if k == "light" else f"{k} {v:g}"
            for k, v, default in (
                ("roll", self.roll, 0.0),
                ("light", self.brightness, 0.0),
                ("contrast", self.contrast, 1.0),
                ("blur", self.blur, 0.0),
            )
            if v != default
        ]
        return ", ".join([f"{self.distance:g}x distance", f"{self.yaw:g}°", *extra])


# RP2's stationary test: five distances (their 5' to 40' on a sign first photographed at 5') × three angles,
# plus a darker and a brighter scene at the nearest distance. Held out: the attack draws continuous
# conditions and never these.
STATIONARY_GRID: tuple[Condition, ...] = tuple(
    Condition(distance=d, yaw=a) for d in (1.0, 2.0, 3.0, 4.0, 6.0) for a in (0.0, 15.0, 30.0)
) + (Condition(brightness=-0.2), Condition(brightness=0.2))


@dataclasses.dataclass(frozen=True)
class PhysicalConditions:
    """The distribution of viewing conditions RP2 optimises over (each drawn uniformly in its range).

    Attributes
    ----------
    samples : int
        k: views of every adversarial image per step (the expectation's sample size).
    max_distance : float
        Distances in [1, max_distance].
    max_yaw : float
        Yaw in [-max_yaw, max_yaw] degrees.
    max_roll : float
        Roll in [-max_roll, max_roll] degrees.
    brightness : float
        Brightness in [-brightness, brightness].
    contrast : float
        Contrast in [1 - contrast, 1 + contrast].
    max_blur : float
        Defocus σ in [0, max_blur] pixels.
    noise : float
        Sensor noise standard deviation n.
    jpeg_quality : int or None
        JPEG quality q in [jpeg_quality, 95] (None: no JPEG).
    """

    samples: int = 4
    max_distance: float = 4.0
    max_yaw: float = 25.0
    max_roll: float = 10.0
    brightness: float = 0.15
    contrast: float = 0.2
    max_blur: float = 0.8
    noise: float = 0.02
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("samples", is_count(self.samples) and self.samples <= MAX_VIEWS, f"an integer in 1..{MAX_VIEWS}"),
            ("max_distance", is_number(self.max_distance) and self.max_distance >= 1, "a number >= 1"),
            ("max_yaw", is_number(self.max_yaw) and 0 <= self.max_yaw <= MAX_YAW, f"degrees in [0, {MAX_YAW:g}]"),
            ("max_roll", is_number(self.max_roll) and 0 <= self.max_roll <= 180, "degrees in [0, 180]"),
            ("brightness", is_number(self.brightness) and 0 <= self.brightness <= 1, "a number in [0, 1]"),
            ("contrast", is_number(self.contrast) and 0 <= self.contrast < 1, "a number in [0, 1)"),
            ("max_blur", is_number(self.max_blur) and self.max_blur >= 0, "a number >= 0"),
            ("noise", is_number(self.noise) and self.noise >= 0, "a number >= 0"),
            (
                "jpeg_quality",
                self.jpeg_quality is None or is_count(self.jpeg_quality) and self.jpeg_quality <= 95,
                "None or an integer in 1..95",
            ),
        )
        _refuse_first_wrong(self, checks)


def sample_views(x: tf.Tensor, conditions: PhysicalConditions, seed: tf.Tensor, copies: int = 1) -> tf.Tensor:
    """k views of every image under conditions drawn from `conditions` (stateless in `seed`).

    Geometry, light and noise are drawn per view and image; distance, defocus and JPEG quality per view
    (one resampling size per view keeps the batch one tensor). With `copies` > 1 the batch holds that many
    stickered copies of the same N images ((copy, image) order, e.g. RP2's L × T × N) and each image is seen
    under the same conditions in every copy: what a victim sees depends on the seed, not on how many targets
    or λ share the batch.

    Parameters
    ----------
    x : tf.Tensor
        [B, H, W, C] images in [0, 1].
    conditions : PhysicalConditions
        The distribution.
    seed : tf.Tensor
        [2] int32, e.g. (attack seed, epoch).
    copies : int
        How many copies of the same images the batch holds (B = copies × N); default 1.

    Returns
    -------
    tf.Tensor
        [k * B, H, W, C], view-major (the k views of image b at b, B + b, 2B + b, ...).
    """
    if not isinstance(conditions, PhysicalConditions):
        raise ValueError(f"conditions: expected PhysicalConditions, got {conditions!r}")
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(f"seed: expected two integers, e.g. (attack seed, epoch), got {seed.dtype.name} {seed.shape}")
    x = _images(x)
    k, c = conditions.samples, conditions
    if not (isinstance(copies, int) and copies >= 1 and x.shape[0] is not None and x.shape[0] % copies == 0):
        raise ValueError(f"copies: expected an integer >= 1 dividing the batch ({x.shape[0]}), got {copies!r}")
    images = x.shape[0] // copies
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 8)

    def draw(i, shape, low, high):
        return tf.random.stateless_uniform(shape, seeds[i], low, high)

    def per_image(i, low, high):  # [k * copies * N]: one draw per (view, image), the same in every copy
        if low == high:
            return tf.fill((k * copies * images,), float(low))
        return tf.reshape(tf.tile(draw(i, (k, 1, images), low, high), [1, copies, 1]), (-1,))

    views = tf.tile(x, [k, 1, 1, 1])
    views = _turn(views, per_image(0, -c.max_yaw, c.max_yaw), per_image(1, -c.max_roll, c.max_roll))
    distance = draw(2, (k,), 1.0, c.max_distance)
    blur = draw(3, (k,), 0.0, c.max_blur)
    per_view = tf.split(views, k) if k > 1 else [views]
    views = tf.concat([_defocus(_distance(v, distance[j]), blur[j]) for j, v in enumerate(per_view)], 0)
    contrast = per_image(4, 1.0 - c.contrast, 1.0 + c.contrast)[:, None, None, None]
    brightness = per_image(5, -c.brightness, c.brightness)[:, None, None, None]
    views = contrast * views + brightness
    if c.noise:
        noise = tf.random.stateless_normal((k, 1, images) + tuple(x.shape[1:]), seeds[6])
        views += c.noise * tf.reshape(tf.tile(noise, [1, copies, 1, 1, 1, 1]), tf.shape(views))
    views = tf.clip_by_value(views, 0.0, 1.0)
    if c.jpeg_quality is not None:
        quality = tf.cast(draw(7, (k,), float(c.jpeg_quality), 95.0), tf.int32)
        per_view = tf.split(views, k) if k > 1 else [views]
        views = tf.concat([_jpeg(v, quality[j]) for j, v in enumerate(per_view)], 0)
    return views


def see(x: tf.Tensor | np.ndarray, condition: Condition) -> tf.Tensor:
    """Images as seen under one fixed condition (the stationary test's cell).

    Parameters
    ----------
    x : tf.Tensor or np.ndarray
        [B, H, W, C] images in [0, 1].
    condition : Condition
        The viewing condition.

    Returns
    -------
    tf.Tensor
        [B, H, W, C] in [0, 1]; the images themselves (bit for bit) under Condition().
    """
    if not isinstance(condition, Condition):
        raise ValueError(f"condition: expected a Condition, got {condition!r}")
    x = _images(x)
    batch = tf.shape(x)[:1]
    seen = _turn(x, tf.fill(batch, float(condition.yaw)), tf.fill(batch, float(condition.roll)))
    seen = _defocus(_distance(seen, tf.constant(float(condition.distance))), tf.constant(float(condition.blur)))
    return tf.clip_by_value(condition.contrast * seen + condition.brightness, 0.0, 1.0)


def _images(x):
    """x as a float32 tensor [B, H, W, C], or a ValueError naming it (values in [0, 1] are the caller's: a
    traced step cannot look at them)."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4 or not x.dtype.is_floating:
        raise ValueError(f"x: expected float images [B, H, W, C] in [0, 1], got {x.dtype.name} {x.shape}")
    return tf.cast(x, tf.float32)


def _turn(x, yaw_degrees, roll_degrees):
    """The sign's plane turned by yaw about its vertical axis and rolled, per image (a homography each)."""
    height, width = x.shape[1], x.shape[2]
    theta, rho = yaw_degrees * (math.pi / 180), roll_degrees * (math.pi / 180)
    z0 = _FOCAL * float(width)
    cos_t, sin_t, cos_r, sin_r = tf.cos(theta), tf.sin(theta), tf.cos(rho), tf.sin(rho)
    zero, one = tf.zeros_like(theta), tf.ones_like(theta)
    # Input (u, v) centred -> output: roll, then the turned plane projected at focal distance z0.
    centred = tf.stack(
        [
            tf.stack([z0 * cos_t * cos_r, -z0 * cos_t * sin_r, zero], -1),
            tf.stack([z0 * sin_r, z0 * cos_r, zero], -1),
            tf.stack([sin_t * cos_r, -sin_t * sin_r, z0 * one], -1),
        ],
        -2,
    )  # [B, 3, 3]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    shift = tf.constant([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    unshift = tf.constant([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    forward = shift[None] @ centred @ unshift[None]
    inverse = tf.linalg.inv(forward)  # the projective transform maps output pixels to input ones
    inverse = inverse / inverse[:, 2:3, 2:3]
    flat = tf.reshape(inverse, (-1, 9))[:, :8]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=flat,
        output_shape=tf.constant([height, width]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )


def _distance(x, distance):
    """Seen from `distance` times further: resampled to round(H / distance) pixels (antialiased), then back."""
    height, width = x.shape[1], x.shape[2]
    size = tf.cast(tf.maximum(4.0, tf.round(tf.constant([float(height), float(width)]) / distance)), tf.int32)
    low = tf.image.resize(x, size, method="bilinear", antialias=True)
    return tf.image.resize(low, [height, width], method="bilinear", antialias=True)


def _defocus(x, sigma, radius=2):
    """A Gaussian blur of σ pixels (5x5 kernel; σ = 0 leaves the image exact)."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-(offsets**2) / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    weights /= tf.reduce_sum(weights)
    channels = x.shape[-1]
    kernel = (weights[:, None] * weights[None, :])[:, :, None, None] * tf.ones((1, 1, channels, 1))
    padded = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def _jpeg(x, quality):
    """JPEG at `quality` with the straight-through gradient."""
    coded = tf.map_fn(lambda image: tf.image.adjust_jpeg_quality(image, quality), x)
    return x + tf.stop_gradient(coded - x)


def grid_names(grid: Sequence[Condition] = STATIONARY_GRID) -> list[str]:
    """The cells' names, in order (for records and figures)."""
    return [c.name for c in grid]
