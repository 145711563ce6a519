"""Training one model row (Table II's defences, Defend++, the MNIST rows): data, build, fit with
resumable checkpoints, save the deployable classifier and its ModelRecord (metrics.json).

    TrainingRun(defence="tv", params={"alpha": 1e-4}).run("runs/tv")
"""

import dataclasses
import hashlib
import math
import os
import pathlib
import time

import numpy as np

from blurnet_tf import files, locks, paper, rundir
from blurnet_tf.errors import SettingError


MAX_SEED = 2**32 - 1


def _finite(low, high=math.inf, low_open=False):
    return lambda v: math.isfinite(v) and (v > low if low_open else v >= low) and v <= high


# The defences' numeric parameters (registry.DEFENCE_PARAMS) and what each may be: a NaN or a negative
# weight would train a model no paper describes, and fail (if at all) far from the flag.
PARAM_RANGES = {
    "alpha": (_finite(0.0), "a finite number >= 0"),
    "blur_sigma": (_finite(0.0), "a finite number >= 0 (0: OpenCV's rule for the kernel size)"),
    "sigma": (_finite(0.0), "a finite number >= 0"),
    "pgd_eps": (_finite(0.0, 1.0), "a finite number in [0, 1]"),
    "pgd_step": (_finite(0.0, 1.0, low_open=True), "a finite number in (0, 1]"),
    "fgsm_eps": (_finite(0.0, 1.0), "a finite number in [0, 1]"),
    "gn_sigma": (_finite(0.0), "a finite number >= 0"),
    "low_pass_weight": (_finite(0.0), "a finite number >= 0"),
    "reconstruction_weight": (_finite(0.0), "a finite number >= 0"),
    "kernel_size": (lambda v: v >= 1, "an integer >= 1"),
    "tik_window": (lambda v: v >= 1, "an integer >= 1"),
    "pgd_steps": (lambda v: v >= 1, "an integer >= 1"),
    "alternating_cycles": (lambda v: v >= 1, "an integer >= 1"),
    "alternating_epochs": (lambda v: v >= 1, "an integer >= 1"),
}


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """Every setting that defines a trained model (a checkpoint of other settings is refused)."""

    dataset: str = "lisa"
    defence: str = "baseline"
    params: dict = dataclasses.field(default_factory=dict)  # the defence's own (unset: the paper's)
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    seed: int = 0
    deterministic: bool = False
    strategy: str = "default"
    test_fraction: float | None = None  # None: the dataset's default
    split_seed: int = 0
    validation_fraction: float = 0.0
    max_train_images: int = 0
    train_tracks: float = 1.0  # LISA: train on this share of each class's training tracks (issue 41's comparator)
    alpha_warmup: int = 0  # epochs over which a feature-map penalty ramps up to its alpha (0: full from the start)
    allow_missing_classes: bool = False
    precision: str = "float32"  # mixed_bfloat16: bf16 compute, float32 weights, optimiser and loss
    # Defend++ as the paper ran it (issue #16); at their defaults they are left out of config(), so
    # the runs made before they existed keep their hashes.
    architecture: str | None = None  # None: the dataset's classifier; "mnist_resnet18": ResNet-18
    mnist_split: str = "test_split"  # "official": train on the 60,000, test on the 10,000
    optimizer: str = "adam"  # "sgd": momentum SGD with PyTorch-style weight decay
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0  # SGD only: coupled (L2 in the gradient); the paper's 5e-4
    snapshot_epochs: tuple = ()  # keep the model after these epochs (robustness along training)
    snapshot_steps: tuple = ()  # ... and after these batches since the start (inside the first epochs)
    log_penalty_share: bool = False  # log CE, penalty and their gradient norms each epoch (long training)

    def __post_init__(self):
        from blurnet_tf.registry import DEFENCE_PARAMS

        from blurnet_tf.paper import PRECISIONS

        _check(self.precision in PRECISIONS, "precision", f"expected one of {', '.join(PRECISIONS)}")
        _check(self.dataset in ("lisa", "mnist"), "dataset", f"expected lisa or mnist, got {self.dataset!r}")
        _check(
            self.defence in DEFENCE_PARAMS,
            "defence",
            f"unknown {self.defence!r}; choose from {', '.join(DEFENCE_PARAMS)}",
        )
        _check(self.epochs >= 1, "epochs", f"expected an integer >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, "batch_size", f"expected an integer >= 1, got {self.batch_size}")
        _check(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "learning_rate",
            f"expected a positive number, got {self.learning_rate}",
        )
        _check(
            self.test_fraction is None or 0 < self.test_fraction < 1,
            "test_fraction",
            f"expected a fraction in (0, 1), got {self.test_fraction}",
        )
        _check(
            0 <= self.validation_fraction < 1,
            "validation_fraction",
            f"expected a fraction in [0, 1), got {self.validation_fraction}",
        )
        _check(self.max_train_images >= 0, "max_train_images", f"expected an integer >= 0, got {self.max_train_images}")
        _check(
            isinstance(self.alpha_warmup, int)
            and not isinstance(self.alpha_warmup, bool)
            and 0 <= self.alpha_warmup <= self.epochs,
            "alpha_warmup",
            f"expected an integer in 0..{self.epochs} (--epochs), got {self.alpha_warmup!r}",
        )
        _check(
            not self.alpha_warmup or self.defence in PENALISED,
            "alpha_warmup",
            f"ramps a feature-map penalty: --defence={self.defence} has none (one of {', '.join(PENALISED)} has)",
        )
        _check(
            math.isfinite(self.train_tracks)
            and 0 < self.train_tracks <= 1
            and (self.train_tracks == 1 or self.dataset == "lisa"),
            "train_tracks",
            f"expected a share in (0, 1] (LISA only), got {self.train_tracks}",
        )
        for name in ("seed", "split_seed"):  # NumPy's and TensorFlow's seeds are 32-bit
            value = getattr(self, name)
            _check(0 <= value <= MAX_SEED, name, f"expected an integer in 0..{MAX_SEED}, got {value}")
        for name, value in self.params.items():
            ok, expected = PARAM_RANGES.get(name, (lambda v: True, ""))
            _check(value is None or ok(value), name, f"expected {expected}, got {value}")
        _check(
            all(1 <= e <= self.epochs for e in self.snapshot_epochs),
            "snapshot_epochs",
            f"expected epochs in 1..{self.epochs}, got {list(self.snapshot_epochs)}",
        )
        _check(
            all(s >= 1 for s in self.snapshot_steps),
            "snapshot_steps",
            f"expected batch counts >= 1, got {list(self.snapshot_steps)}",
        )
        self._check_paper_settings()
        if self.test_fraction is None:
            default = paper.LISA_TEST_FRACTION if self.dataset == "lisa" else paper.MNIST_TEST_FRACTION
            object.__setattr__(self, "test_fraction", default)

    def config(self):
        """The settings as stored in metrics.json and hashed for the checkpoint."""
        d = dataclasses.asdict(self)
        d.pop("allow_missing_classes")  # changes nothing once the data loaded
        d.pop("snapshot_epochs")  # copies of the weights along the way change none of them
        d.pop("snapshot_steps")
        d.pop("log_penalty_share")  # watches training, changes nothing
        for name, default in _ADDED_DEFAULTS.items():
            if d[name] == default:
                d.pop(name)
        return d

    def _check_paper_settings(self):
        from blurnet_tf.registry.defence_params import DATASET_ARCHITECTURES

        choices = DATASET_ARCHITECTURES.get(self.dataset, ())
        _check(
            self.architecture is None or self.architecture in choices,
            "architecture",
            f"expected one of {', '.join(choices)} for {self.dataset}, got {self.architecture!r}",
        )
        _check(
            self.lr_schedule in LR_SCHEDULES,
            "lr_schedule",
            f"expected one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}",
        )
        _check(
            self.mnist_split in MNIST_SPLITS,
            "mnist_split",
            f"expected one of {', '.join(MNIST_SPLITS)}, got {self.mnist_split!r}",
        )
        official = self.mnist_split == "official"
        _check(not official or self.dataset == "mnist", "mnist_split", "official needs --dataset=mnist")
        _check(
            not official or self.test_fraction in (None, paper.MNIST_TEST_FRACTION),
            "test_fraction",
            "the official MNIST split tests on all 10,000 test images; drop --test_fraction",
        )
        _check(self.optimizer in ("adam", "sgd"), "optimizer", f"expected adam or sgd, got {self.optimizer!r}")
        _check(
            math.isfinite(self.momentum) and 0 <= self.momentum < 1,
            "momentum",
            f"expected a number in [0, 1), got {self.momentum}",
        )
        _check(self.optimizer == "sgd" or self.momentum == 0.9, "momentum", "only with --optimizer=sgd")
        _check(
            math.isfinite(self.weight_decay) and 0 <= self.weight_decay < 1,
            "weight_decay",
            f"expected a number in [0, 1), got {self.weight_decay}",
        )
        _check(self.optimizer == "sgd" or not self.weight_decay, "weight_decay", "only with --optimizer=sgd")

    def build(self):
        from blurnet_tf.registry import build_model
        from blurnet_tf.registry.precision import global_precision

        with global_precision(self.precision):
            return build_model(self.defence, self.dataset, architecture=self.architecture, **self.params)

    def run(self, out, data_dir=None, checkpoint_every=1, log=print, overwrite=False):
        """Trains (or resumes) into `out`; returns the ModelRecord. An `out` holding files training did
        not write (a user's model.keras, say) is refused unless `overwrite`."""
        started = time.time()
        out = pathlib.Path(out)
        locks.claim_dir(out, rundir.TRAIN_WRITER, overwrite)  # a refused --out costs no TensorFlow start-up
        with locks.RunLock(out):
            import keras
            import tensorflow as tf

            from blurnet_tf.data import find_data_dir
            from blurnet_tf.defences import DefendPP, classifier_of
            from blurnet_tf.experiments.model_training import train
            from blurnet_tf.registry import save_model

            try:
                self.build()  # a bad combination of defence and parameters fails before any data is read
            except ValueError as exc:
                raise SettingError("defence", str(exc)) from None
            keras.utils.set_random_seed(self.seed)
            if self.deterministic:
                tf.config.experimental.enable_op_determinism()
            data_dir = find_data_dir(data_dir)
            data = self._load_data(data_dir, log)
            locks.mark_owner(out, rundir.TRAIN_WRITER)
            model, history, info = train(
                self.build,
                data["train"],
                out,
                epochs=self.epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                lr_schedule=self.lr_schedule,
                seed=self.seed,
                checkpoint_every=checkpoint_every,
                strategy=self.strategy,
                validation_data=data.get("monitor", data["test"]),
                verbose=1 if os.isatty(1) else 2,
                config=self.config(),
                optimizer=self.optimizer,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                snapshot_epochs=self.snapshot_epochs,
                snapshot_steps=self.snapshot_steps,
                penalty_share=self.log_penalty_share,
                alpha_warmup=self.alpha_warmup,
            )
            if isinstance(model, DefendPP):  # kept for figures only; inference never uses it
                save_model(model.autoencoder, out / rundir.AUTOENCODER_FILE)
            model = classifier_of(model)  # the deployable classifier, without a training wrapper
            save_model(model, out / rundir.MODEL_FILE)
            record = rundir.ModelRecord(
                **data["evaluate"](model),
                dataset=self.dataset,
                defence=self.defence,
                flags=self.config(),
                split=data["split"],
                seed=self.seed,
                history=history,
                training=info,
                data_dir=os.fspath(data_dir),
                data_hash=data["hash"],
                wall_seconds=time.time() - started,
                versions=files.package_versions(),
            )
            record.write(out / rundir.METRICS_FILE)
        return record

    def _load_data(self, data_dir, log):
        """{train: (x, y), test: (x, y), evaluate: model -> metrics, hash, split}."""
        from blurnet_tf.evaluation.metrics import accuracy, predict_classes

        if self.dataset == "mnist" and self.mnist_split == "official":
            return self._official_mnist(data_dir, log)
        if self.dataset == "mnist":
            from blurnet_tf.data.mnist import load_mnist

            x_train, y_train, x_test, y_test = load_mnist(data_dir, self.test_fraction, self.split_seed)
            if self.max_train_images:
                x_train, y_train = x_train[: self.max_train_images], y_train[: self.max_train_images]
            log(
                f"MNIST: the 10,000 official test images split {len(y_train)} train / {len(y_test)} test "
                f"(seed {self.split_seed})"
            )
            digest = hashlib.sha256(np.ascontiguousarray(x_train).tobytes() + np.ascontiguousarray(x_test).tobytes())
            return {
                "train": (x_train, y_train),
                "test": (x_test, y_test),
                "hash": digest.hexdigest()[:16],
                "split": {
                    "train_images": int(len(y_train)),
                    "test_images": int(len(y_test)),
                    "test_fraction": self.test_fraction,
                    "seed": self.split_seed,
                },
                "evaluate": lambda m: {
                    "legit_accuracy": accuracy(predict_classes(m, x_test), y_test),
                    "test_images": int(len(y_test)),
                },
            }

        from blurnet_tf.data import hold_out_validation, load_lisa_split, load_victims
        from blurnet_tf.data.lisa import dataset_hash, format_split_report
        from blurnet_tf.evaluation.clean_accuracy import evaluate_clean

        train_set, test_set, split = load_lisa_split(
            data_dir, self.test_fraction, self.split_seed, allow_missing_classes=self.allow_missing_classes
        )
        if self.validation_fraction:
            train_set, _ = hold_out_validation(
                train_set, self.validation_fraction, paper.validation_seed(self.split_seed)
            )
        if self.train_tracks < 1:
            from blurnet_tf.data import keep_training_tracks

            train_set = keep_training_tracks(train_set, self.train_tracks, self.seed)
            log(
                f"training on {len(train_set.labels)} crops of {len(np.unique(train_set.tracks))} tracks "
                f"({self.train_tracks:g} of each class's training tracks, seed {self.seed})"
            )
        if self.max_train_images:
            train_set = train_set.subset(slice(0, self.max_train_images))
        log(format_split_report(split))
        victims, _ = load_victims(data_dir)
        return {
            "train": (train_set.images, train_set.labels),
            "test": (test_set.images, test_set.labels),
            "hash": dataset_hash(train_set) + "/" + dataset_hash(test_set),
            "split": split,
            "evaluate": lambda m: evaluate_clean(m, test_set, victims),
        }

    def _official_mnist(self, data_dir, log):
        """The official 60,000 / 10,000 split; validation_fraction of the 60,000 held out (seeded by
        paper.validation_seed(split_seed)) and watched during training instead of the test set."""
        from blurnet_tf.data.mnist import OFFICIAL_TRAIN, load_mnist_official
        from blurnet_tf.evaluation.metrics import accuracy, predict_classes

        n_val = int(round(self.validation_fraction * OFFICIAL_TRAIN))
        sets = load_mnist_official(data_dir, n_val, paper.validation_seed(self.split_seed))
        (x_train, y_train), (x_test, y_test) = sets["train"], sets["test"]
        if self.max_train_images:
            x_train, y_train = x_train[: self.max_train_images], y_train[: self.max_train_images]
        log(
            f"MNIST official split: {len(y_train)} train / {n_val} validation (held out of the 60,000) / "
            f"{len(y_test)} test"
        )
        digest = hashlib.sha256(np.ascontiguousarray(x_train).tobytes() + np.ascontiguousarray(x_test).tobytes())
        data = {
            "train": (x_train, y_train),
            "test": (x_test, y_test),
            "hash": digest.hexdigest()[:16],
            "split": {
                "mnist_split": "official",
                "train_images": int(len(y_train)),
                "validation_images": n_val,
                "test_images": int(len(y_test)),
                "seed": paper.validation_seed(self.split_seed),
            },
            "evaluate": lambda m: {
                "legit_accuracy": accuracy(predict_classes(m, x_test), y_test),
                "test_images": int(len(y_test)),
            },
        }
        if n_val:
            data["monitor"] = sets["validation"]
        return data


LR_SCHEDULES = ("constant", "cosine", "paper_step")
PENALISED = ("tv", "tik_hf", "tik_pseudo")  # the defences whose FeatureMapRegularizer alpha_warmup ramps
MNIST_SPLITS = ("test_split", "official")
_ADDED_DEFAULTS = {
    "architecture": None,
    "mnist_split": "test_split",
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "train_tracks": 1.0,
    "alpha_warmup": 0,
}


def _check(ok, field, problem):
    if not ok:
        raise SettingError(field, problem)
