"""The run-directory contract: every path a run writes, and the typed records stored there.

A record is a frozen dataclass written as JSON with `schema` and `kind`; every record carries the
settings it was made with and the seed, so per-seed results sit side by side and a report reads
what a run actually used. Only this module spells file names and record keys.

    <work>/models/<row>[-seed<k>]/      model.keras, metrics.json (ModelRecord), checkpoint/
    <work>/<stage>/<name>[-seed<k>]/    results.json (StickerRecord, PgdRecord or ResultRecord)
    <work>/mnist/models/<row>, <work>/mnist/robustness/<row>
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import typing

from blurnet_tf import files, locks, paper
from blurnet_tf.errors import DataError

BASELINE = "baseline"  # the undefended LISA-CNN row
PIXEL_DEFLECTION = "pixel_deflection"  # the robustness benchmark's Pixel Deflection row (a trained row underneath)
SCHEMA = 1
MODEL_FILE = "model.keras"
AUTOENCODER_FILE = "autoencoder.keras"
METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"
CSV_FILE = "results.csv"
ARRAYS_FILE = "arrays.npz"  # what a figure is drawn from
CHECKPOINT_DIR = "checkpoint"
SNAPSHOT_DIR = "snapshots"  # the classifier after chosen epochs (robustness along training)
ORIGINAL = "original"  # the RP2 authors' LISA-CNN weights: a model spec, not a directory
MNIST_ROBUSTNESS_KIND = "mnist_robustness"  # results.json of mnist_attacks
EVALUATION_KIND = "evaluation"  # evaluate --out


def settings_key(settings, length=16):
    """A stable hash of a settings mapping or dataclass (sorted JSON)."""
    if dataclasses.is_dataclass(settings):
        settings = dataclasses.asdict(settings)
    text = json.dumps(settings, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _plain(value):
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def is_result_dir(path):
    """False for the copies the pipeline keeps aside (superseded, corrupt, not written by a step)."""
    path = pathlib.Path(path)
    return path.is_dir() and not any(f".{tag}" in path.name for tag in ("superseded-", "corrupt-", "not-a-step"))


def seeded(name, seed):
    """Directory name of a row under a seed: seed 0 keeps the bare name (the single-seed layout)."""
    return name if not seed else f"{name}-seed{seed}"


def accuracy_point(level):
    """The run-directory name of a legit-accuracy level (the fair profile's cells)."""
    return f"acc{level}"


class Layout:
    """Where a reproduction's steps write."""

    def __init__(self, work_dir):
        self.root = pathlib.Path(work_dir)

    def model_dir(self, row, seed=0):
        return self.root / "models" / seeded(row, seed)

    def model(self, row, seed=0):
        """The model spec a binary takes: 'original' or the run directory."""
        return ORIGINAL if row == ORIGINAL else os.fspath(self.model_dir(row, seed))

    def model_inputs(self, row, seed=0):
        """The files a result on this model depends on (none for the fixed original weights)."""
        return [] if row == ORIGINAL else [self.model_dir(row, seed) / MODEL_FILE]

    def result_dir(self, stage, name, seed=0):
        return self.root / stage / seeded(name, seed)

    def results(self, stage, name, seed=0):
        return self.result_dir(stage, name, seed) / RESULTS_FILE

    def mnist_model_dir(self, row):
        return self.root / "mnist" / "models" / row

    def mnist_robustness_dir(self, row):
        return self.root / "mnist" / "robustness" / row

    # The studies' layouts (profiles with a trade-off, long-training or robustness budget).
    def frontier_model_dir(self, family, point, seed):
        """A trade-off frontier's model: one family at one point of its strength knob, one seed."""
        return self.root / "models" / family / point / f"seed{seed}"

    def frontier_attack_dir(self, family, point, seed):
        return self.root / "rp2" / family / point / f"seed{seed}"

    def baseline_point_model(self, point, seed, train_epochs):
        """The file a baseline point of the trade-off is read from: a snapshot ("step<k>", "epoch<k>"), or the
        trained model ("epoch<train_epochs>")."""
        run = self.frontier_model_dir(BASELINE, "training", seed)
        if point == f"epoch{train_epochs}":
            return run / MODEL_FILE
        if point.startswith("step"):
            return snapshot_step_file(run, int(point.removeprefix("step")))
        return snapshot_file(run, int(point.removeprefix("epoch")))

    def epoch_model_file(self, row, point, final_epoch):
        """Long training: the model after epoch `point` ("epoch<k>"), a snapshot unless it is the last."""
        epoch = int(point.removeprefix("epoch"))
        run = self.model_dir(row)
        return run / MODEL_FILE if epoch == final_epoch else snapshot_file(run, epoch)

    def epoch_attack_dir(self, row, point):
        return self.root / "rp2" / row / point

    def benchmark_dir(self, row):
        return self.root / "benchmark" / row

    def adaptive_dir(self, row, mode, regulariser):
        return self.root / "adaptive" / row / (mode if mode == "lowfreq" else f"{mode}_{regulariser or 'own'}")

    def physical_attack_dir(self, row, sticker, seed):
        """An RP2 sticker of the physical study: "digital" or "eot" (optimised over viewing conditions)."""
        return self.root / "rp2" / row / sticker / f"seed{seed}"

    def stationary_dir(self, row, seed):
        return self.root / "stationary" / row / f"seed{seed}"

    def crosscheck_dir(self, row):
        return self.root / "crosscheck" / row


# --- Records -----------------------------------------------------------------------------


class _Record:
    KIND: typing.ClassVar[str] = ""

    def to_json(self):
        return {"schema": SCHEMA, "kind": self.KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data, path="record"):
        if not isinstance(data, dict):
            raise DataError(
                path,
                f"not a {cls.KIND} record (expected a JSON object, got {type(data).__name__}); move "
                "it aside to start this result again",
            )
        if not isinstance(data.get("schema", SCHEMA), int):
            raise DataError(path, f"not a {cls.KIND} record (its schema is {data['schema']!r})")
        if data.get("schema", SCHEMA) > SCHEMA:
            raise DataError(path, f"written by a newer blurnet_tf (schema {data['schema']} > {SCHEMA})")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        fields = {k: v for k, v in cls._upgrade(dict(data)).items() if k in names}
        if required - set(fields):
            raise DataError(
                path,
                f"not a {cls.KIND} record (missing {', '.join(sorted(required - set(fields)))}); "
                "move it aside to start this result again",
            )
        return cls(**fields)

    @classmethod
    def _upgrade(cls, data):
        """Schema 0 (no "schema" key) had the same keys, but a record's seed was only in its flags."""
        if "seed" in {f.name for f in dataclasses.fields(cls)}:
            flags = data.get("flags")
            data.setdefault("seed", flags.get("seed", 0) if isinstance(flags, dict) else 0)
        return data

    @property
    def precision(self):
        """The compute precision of a run with settings (runs made before the flag: float32)."""
        return (getattr(self, "flags", None) or {}).get("precision", "float32")

    def write(self, path):
        files.write_json(path, self.to_json())
        return path

    @classmethod
    def read(cls, path):
        data = files.read_json(path)
        return None if data is None else cls.from_json(data, path)


@dataclasses.dataclass(frozen=True)
class ModelRecord(_Record):
    """metrics.json of a trained model."""

    KIND: typing.ClassVar[str] = "model"
    legit_accuracy: float
    test_images: int
    dataset: str = "lisa"
    defence: str = "baseline"
    flags: dict = dataclasses.field(default_factory=dict)  # the training settings
    split: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    victims_correct: int | None = None
    victim_accuracy: float | None = None
    victim_predictions: list | None = None
    per_class_accuracy: dict | None = None
    correct_by_track: dict | None = None  # test track -> [correct, images] (LISA)
    history: list = dataclasses.field(default_factory=list)
    training: dict = dataclasses.field(default_factory=dict)
    data_dir: str | None = None
    data_hash: str | None = None
    wall_seconds: float | None = None
    versions: dict = dataclasses.field(default_factory=dict)

    @property
    def epochs(self):
        return self.flags.get("epochs")

    def trained_split(self):
        """(dataset, test_fraction, split_seed); test_fraction None: MNIST's official 10,000 test images."""
        official = self.flags.get("mnist_split") == "official"
        return (
            self.flags.get("dataset", "lisa"),
            None if official else self.flags["test_fraction"],
            self.flags["split_seed"],
        )


@dataclasses.dataclass(frozen=True)
class StickerRecord(_Record):
    """results.json of an RP2 run: one row per (lambda, target), aggregates, loss curves."""

    KIND: typing.ClassVar[str] = "rp2_stickers"
    flags: dict  # the attack's settings
    rows: list  # {"lambda", "target", "asr", "targeted", "l2"}
    aggregate: dict  # "lambda=<l>" and "best_lambda_per_target" -> summary
    clean_victim_accuracy: float
    history: dict = dataclasses.field(default_factory=dict)
    noise_files: dict = dataclasses.field(default_factory=dict)  # "<lambda>/<target>" -> file in the run dir
    seed: int = 0
    paper: dict | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    wall_seconds: float | None = None

    def summary(self, lam):
        return self.aggregate.get(f"lambda={float(lam):g}")

    def noise_file(self, run_dir, lam, target):
        """The stored noise of one (lambda, target); schema 0 runs used one name per run directory."""
        name = self.noise_files.get(
            f"{float(lam):g}/{int(target)}", f"noise/lambda{float(lam):g}_target{int(target)}.npy"
        )
        return pathlib.Path(run_dir) / name


@dataclasses.dataclass(frozen=True)
class PgdRecord(_Record):
    KIND: typing.ClassVar[str] = "pgd"
    flags: dict
    pgd: dict  # {"asr", "l2", "paper"}
    seed: int = 0
    versions: dict = dataclasses.field(default_factory=dict)
    wall_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class ResultRecord(_Record):
    """Any other experiment's results: its settings, seed and a payload of named values."""

    KIND: typing.ClassVar[str] = "result"
    experiment: str
    settings: dict
    values: dict
    seed: int = 0

    @classmethod
    def read_values(cls, path):
        """The payload of a record file; schema 0 files were the payload itself."""
        data = files.read_json(path)
        if data is None:
            return None
        return cls.from_json(data, path).values if not isinstance(data, dict) or "schema" in data else data


def snapshot_file(run_dir, epoch):
    """The classifier a training run kept after `epoch` (TrainingRun.snapshot_epochs)."""
    return pathlib.Path(run_dir) / SNAPSHOT_DIR / f"epoch{int(epoch)}.keras"


def snapshot_step_file(run_dir, step):
    """The classifier a training run kept after `step` batches (TrainingRun.snapshot_steps)."""
    return pathlib.Path(run_dir) / SNAPSHOT_DIR / f"step{int(step)}.keras"


def keras_archive(spec):
    """The .keras file a `--model` names (a run directory's model.keras, or the file itself), checked
    without loading Keras: a DataError naming the path if it is missing, a link that leads nowhere (broken
    or a loop), not a zip archive, or an archive without config.json."""
    import zipfile

    path = pathlib.Path(spec)
    if path.is_dir():
        path = path / MODEL_FILE
    if path.is_symlink() and not os.path.exists(path):  # (exists follows the link: false when broken or looping)
        raise DataError(path, "is a symbolic link that leads to no file (broken, or a loop)")
    if not path.is_file():
        raise DataError(
            path, "model file not found (expected a run directory with model.keras, a .keras file, or 'original')"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise DataError(path, "not a Keras model (the archive holds no config.json)")
    except (zipfile.BadZipFile, OSError):
        raise DataError(
            path, "not a Keras model (expected a .keras archive; this file is not a zip archive, or is cut short)"
        ) from None
    return path


def read_model(run_dir):
    """The ModelRecord of a run directory (or of the run a snapshot file was kept by), or None
    (original weights, a bare .keras file)."""
    run_dir = pathlib.Path(run_dir)
    if run_dir.suffix == ".keras" and run_dir.parent.name == SNAPSHOT_DIR:
        run_dir = run_dir.parent.parent
    path = run_dir / METRICS_FILE
    return ModelRecord.read(path) if path.is_file() else None


def trained_split(model_spec, default=("lisa", paper.LISA_TEST_FRACTION, 0)):
    """(dataset, test_fraction, split_seed) a model was trained with; `default` without a record."""
    record = None if model_spec == ORIGINAL else read_model(model_spec)
    return default if record is None else record.trained_split()


def write_result(experiment, out, values, arrays=None):
    """Writes an experiment's ResultRecord (and its arrays for the figures, as ARRAYS_FILE)."""
    out = pathlib.Path(out)
    if arrays:
        files.save_npz(out / ARRAYS_FILE, **arrays)
    record = ResultRecord(
        experiment=type(experiment).__name__,
        settings=dataclasses.asdict(experiment),
        values=values,
        seed=getattr(experiment, "seed", 0),
    )
    record.write(out / RESULTS_FILE)
    return record


# The commands that own their run directories (locks.claim_dir), with the records that prove a
# directory made before the owner file their own.
TRAIN_WRITER = locks.Writer("train", {METRICS_FILE: (ModelRecord.KIND,), f"{CHECKPOINT_DIR}/state.json": None})
ATTACK_WRITER = locks.Writer("attack", {RESULTS_FILE: (StickerRecord.KIND, PgdRecord.KIND)})
MNIST_ATTACKS_WRITER = locks.Writer("mnist_attacks", {RESULTS_FILE: (MNIST_ROBUSTNESS_KIND,), "parts/clean.json": None})
REPRODUCE_WRITER = locks.Writer("reproduce")
BENCHMARK_KIND = "benchmark"
BENCHMARK_WRITER = locks.Writer("benchmark", {RESULTS_FILE: (BENCHMARK_KIND,)})
