"""Saving and loading models: `.keras` files with safe_mode, atomically written, and checked where
they are loaded against what the command will feed them and score them with."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import zipfile
from typing import Any

import keras

from blurnet_tf.errors import DataError
from blurnet_tf import rundir
from blurnet_tf.files import ensure_dir


@dataclasses.dataclass(frozen=True)
class ModelContract:
    """What a command feeds a model and scores it against: its dataset's images and classes.

    Attributes
    ----------
    dataset : str
        The dataset's name, e.g. "lisa" or "mnist".
    input_shape : tuple of int
        One image's shape (H, W, C), e.g. (32, 32, 3).
    classes : int
        Number of classes the model scores.
    """

    dataset: str
    input_shape: tuple[int, ...]
    classes: int

    def describe(self) -> str:
        """A phrase for messages, e.g. "32x32x3 images and 18 classes (LISA)"."""
        return f"{'x'.join(map(str, self.input_shape))} images and {self.classes} classes ({self.dataset.upper()})"


LISA_MODEL = ModelContract("lisa", (32, 32, 3), 18)
MNIST_MODEL = ModelContract("mnist", (28, 28, 1), 10)


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Save a model as a .keras file atomically (temp file, fsync, rename).

    Parameters
    ----------
    model : keras.Model
        The model to save.
    path : str or os.PathLike
        The .keras file to write; its folder is created.

    Raises
    ------
    DataError
        If the save fails (disk full, no permission); it names `path` and leaves no temp file.
    """
    path = pathlib.Path(path)
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(path, f"cannot write the model ({exc.strerror or exc})") from None


def load_model(
    spec: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    compile: bool = False,
    expect: ModelContract | None = None,
    custom_objects: dict[str, Any] | None = None,
) -> keras.Model:
    """Load a model: `original` (the RP2 weights), a run directory holding model.keras, or a .keras file.

    Loads with safe_mode=True: a .keras file that carries Python lambdas is refused.

    Parameters
    ----------
    spec : str or os.PathLike
        "original", a run directory or a .keras file.
    data_dir : str or os.PathLike or None
        The data directory for "original"; None finds it (find_data_dir).
    compile : bool
        Compile the model after loading (keras.saving.load_model's `compile`); default False.
    expect : ModelContract or None
        The images and classes the model must take and score (e.g. LISA_MODEL); None checks nothing.
    custom_objects : dict or None
        {name: class or function} of the model's own layers, losses or activations that Keras has not
        registered (keras.saving.load_model's `custom_objects`); safe_mode still refuses lambdas.

    Returns
    -------
    keras.Model
        The loaded model.

    Raises
    ------
    DataError
        Naming the file, if it is missing, not a Keras archive or cannot be loaded; with `expect`, if
        the model was trained on another dataset (its run directory's metrics.json says), takes other
        images or scores another number of classes.
    """
    if spec == rundir.ORIGINAL:
        from blurnet_tf.models.lisa_cnn import load_original_lisa_cnn
        from blurnet_tf.data import find_data_dir

        if expect is not None and expect != LISA_MODEL:
            raise DataError(spec, f"is the RP2 authors' LISA-CNN; expected a model of {expect.describe()}")
        return load_original_lisa_cnn(data_dir or find_data_dir())
    path = pathlib.Path(spec)
    record = _run_record(path)  # a run directory's, or a snapshot's run's
    if expect is not None and record is not None and record.dataset != expect.dataset:
        raise DataError(
            path,
            f"is a model trained on {record.dataset.upper()} (its run's {rundir.METRICS_FILE}); "
            f"expected one of {expect.describe()}",
        )
    path = rundir.keras_archive(path)
    import blurnet_tf.defences  # noqa: F401  (registers the custom layers for deserialisation)

    try:
        model = keras.saving.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=True)
    except (ValueError, OSError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"cannot load model ({_load_problem(exc)})") from None
    if expect is not None:
        check_contract(model, expect, path)
    return model


def _load_problem(exc: BaseException) -> str:
    """Keras' reason in one line; for a class or function of the user's own (anywhere in the message, which
    Keras nests), its name and the way to pass it."""
    text = str(exc)
    missing = re.search(r"Could not locate (?:class|function) '([\w.]+)'", text)
    if missing:
        module = re.search(r"Full object config: \{'module': '([\w.]+)'", text)
        spec = f"{module[1]}:{missing[1]}" if module else f"module:{missing[1]}"
        return (
            f"Could not locate class '{missing[1]}', a layer or function of the model's own: pass it in "
            f"custom_objects (the benchmark binary: --custom_objects={spec})"
        )
    return text.splitlines()[0] or type(exc).__name__


def check_classifier(model: keras.Model, source: str | os.PathLike[str]) -> tuple[tuple, int]:
    """(image shape, classes) of an image classifier: one float input [N,H,W,C], one output [N,classes]
    with at least 2 classes; anything else is a DataError naming `source`."""
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise DataError(
            source,
            f"expected an image classifier with one input and one output, found "
            f"{len(inputs)} input(s) and {len(outputs)} output(s)",
        )
    shape, output = tuple(model.input_shape), tuple(model.output_shape)
    if len(shape) != 4 or len(output) != 2 or not (output[-1] or 0) >= 2:
        raise DataError(
            source,
            f"expected an image classifier taking [N,H,W,C] and giving [N,classes] logits "
            f"(2 or more classes), found input {shape} and output {output}",
        )
    dtype = str(getattr(inputs[0], "dtype", "float32"))
    if "float" not in dtype:
        raise DataError(source, f"expected float images in [0,1] as input, found a {dtype} input")
    return shape[1:], output[-1]


def check_contract(model: keras.Model, expect: ModelContract, source: str | os.PathLike[str]) -> None:
    """Refuses a model whose input or class count differs from `expect` (a DataError naming `source`)."""
    shape, classes = check_classifier(model, source)
    if shape != expect.input_shape or classes != expect.classes:
        found = "x".join("?" if d is None else str(d) for d in shape)
        raise DataError(
            source,
            f"expected a model of {expect.describe()}, found one taking {found} images and scoring {classes} classes",
        )


def _run_record(path):
    try:
        return rundir.read_model(path)
    except (DataError, TypeError, ValueError, AttributeError):
        return None  # an unreadable metrics.json: the model file itself is still checked
