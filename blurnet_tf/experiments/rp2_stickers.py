"""RP2 sticker attacks on the 40 victim stop signs: Table II's white-box run and λ sweep, the
transfer of stickers optimised on another model, Table III's low-frequency (eq. 8) and
regulariser-aware (eq. 9-11) attacks, Table V. One resumable sweep over target groups.

    StickerAttack(model="original").run("runs/attack")   ->  StickerRecord (also results.json)
"""

import dataclasses
import math
import pathlib
import time

import numpy as np

from blurnet_tf import files, locks, paper, rundir
from blurnet_tf.paper import PRECISIONS
from blurnet_tf.ranges import MAX_VIEWS
from blurnet_tf.data import NUM_CLASSES, STOP
from blurnet_tf.errors import DataError, SettingError
from blurnet_tf.experiments import attack_progress

MODES = ("whitebox", "transfer", "lowfreq", "adaptive")
ALL_TARGETS = tuple(t for t in range(NUM_CLASSES) if t != STOP)


@dataclasses.dataclass(frozen=True)
class StickerAttack:
    """Settings of one RP2 run; every field is part of the result's key. Defaults are the paper's."""

    model: str
    mode: str = "whitebox"
    lambdas: tuple = (paper.RP2_LAMBDA,)
    targets: tuple = ALL_TARGETS
    epochs: int = paper.RP2_EPOCHS
    lr: float = 0.1
    norm: str = "l2"
    mask: str = "rectangles"
    mask_threshold: float | None = None  # a grey-level mask is refused unless this says how to read it
    nps: bool = False
    noise_clip: float = 20.0
    source_model: str | None = None  # transfer: the model the stickers are optimised on
    regulariser: str | None = None  # adaptive: None = the model's own
    dct_dim: int = 16  # lowfreq
    seed: int = 0
    precision: str = "float32"  # the attacked model's compute; scoring is always float32
    data_dir: str | None = None
    physical_samples: int = 0  # EOT: views a step over attacks.PhysicalConditions() (0: the digital attack)

    def __post_init__(self):
        _check(self.precision in PRECISIONS, "precision", f"expected one of {', '.join(PRECISIONS)}")
        _check(self.mode in MODES, "mode", f"expected one of {', '.join(MODES)}, got {self.mode!r}")
        _check(len(self.lambdas) > 0, "lambdas", "expected at least one value")
        for lam in self.lambdas:
            _check(
                isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0,
                "lambdas",
                f"expected finite values >= 0, got {lam!r}",
            )
        _check(len(self.targets) > 0, "targets", "expected at least one class")
        for t in self.targets:
            _check(0 <= t < NUM_CLASSES, "targets", f"class indices must be in [0, {NUM_CLASSES}), got {t}")
            _check(t != STOP, "targets", f"{t} is the victims' true class (stop); a target must differ from it")
        _check(len(set(self.targets)) == len(self.targets), "targets", "a class is listed twice")
        _check(self.epochs >= 1, "epochs", f"expected an integer >= 1, got {self.epochs}")
        _check(math.isfinite(self.lr) and self.lr > 0, "lr", f"expected a positive number, got {self.lr}")
        _check(self.norm in ("l1", "l2"), "norm", f"expected l1 or l2, got {self.norm!r}")
        _check(
            math.isfinite(self.noise_clip) and self.noise_clip > 0,
            "noise_clip",
            f"expected a positive number, got {self.noise_clip}",
        )
        _check(1 <= self.dct_dim <= 32, "dct_dim", f"expected 1..32, got {self.dct_dim}")
        _check(0 <= self.seed < 2**31, "seed", f"expected an integer in 0..{2**31 - 1} (RP2's seeds), got {self.seed}")
        _check(
            type(self.physical_samples) is int and 0 <= self.physical_samples <= MAX_VIEWS,
            "physical_samples",
            f"expected an integer in 0..{MAX_VIEWS}, got {self.physical_samples!r}",
        )
        _check(self.mode != "transfer" or bool(self.source_model), "source_model", "--mode=transfer needs it")
        _check(
            self.regulariser in (None, "tv", "tik_hf", "tik_pseudo"),
            "regulariser",
            f"expected tv, tik_hf or tik_pseudo, got {self.regulariser!r}",
        )
        _check(
            self.mask_threshold is None or 0 < self.mask_threshold < 1,
            "mask_threshold",
            f"expected a value in (0, 1), got {self.mask_threshold}",
        )

    @property
    def key(self):
        return _key_of(dataclasses.asdict(self))

    def run(self, out, targets_per_call=17, save_images=4, log=print, overwrite=False):
        """Runs (or resumes) the attack into `out`; returns its StickerRecord. An `out` holding files no
        attack wrote is refused unless `overwrite`; another attack's results, always."""
        if targets_per_call < 1:
            raise SettingError("targets_per_call", f"expected an integer >= 1, got {targets_per_call}")
        out = pathlib.Path(out)
        locks.claim_dir(out, rundir.ATTACK_WRITER, overwrite)
        with locks.RunLock(out):
            _refuse_other_settings(out, self.key)
            return self._run(out, targets_per_call, save_images, log)

    def _run(self, out, targets_per_call, save_images, log):
        from blurnet_tf.attacks import PhysicalConditions, rp2
        from blurnet_tf.evaluation import metrics
        from blurnet_tf.evaluation.sticker_metrics import aggregate, per_target_rows

        started = time.time()
        source = lisa_classifier(self.source_model, self.data_dir) if self.mode == "transfer" else None
        data_dir, victims, mask, model = load_victim_setting(self.model, self.data_dir, self.mask, self.mask_threshold)
        attacked = model if source is None else source
        locks.mark_owner(out, rundir.ATTACK_WRITER)
        if self.precision != "float32":
            from blurnet_tf.registry.precision import with_precision

            attacked = with_precision(attacked, self.precision)
        rescore = self.mode == "transfer" or self.precision != "float32"  # success is judged on `model`
        kwargs = dict(
            lam=list(self.lambdas),
            epochs=self.epochs,
            lr=self.lr,
            norm=self.norm,
            nps_colors=_nps_colors(data_dir) if self.nps else None,
            noise_clip=self.noise_clip,
            transform=attack_transform(self),
            extra_loss=attack_extra_loss(self, model),
            physical=PhysicalConditions(samples=self.physical_samples) if self.physical_samples else None,
            seed=self.seed,
        )
        clean_pred = metrics.predict_classes(model, victims)
        rows, histories, noise_files = [], {}, {}
        groups = [list(self.targets[i : i + targets_per_call]) for i in range(0, len(self.targets), targets_per_call)]
        parts = {tuple(g): out / "parts" / f"{self.key}-{'_'.join(map(str, g))}.json" for g in groups}
        pending = sum(not p.is_file() for p in parts.values())
        progress = attack_progress.bar(pending * self.epochs, f"RP2 {self.mode} {self.model}", unit="epoch")
        for group in groups:
            part = parts[tuple(group)]
            saved = _read_part(part)
            if saved is not None:
                log(f"targets {group}: done in an earlier run, skipped")
            else:
                t0 = time.time()
                r = rp2(attacked, victims, mask, group, progress=attack_progress.epoch_callback(progress), **kwargs)
                adv_pred = (
                    r.predictions
                    if not rescore
                    else np.stack(
                        [
                            metrics.predict_classes(model, a.reshape(-1, *victims.shape[1:])).reshape(len(group), -1)
                            for a in r.adversarial
                        ]
                    )
                )
                saved = {"rows": [], "history": {}, "noise_files": {}}
                for li, lam in enumerate(r.lambdas):
                    saved["rows"] += per_target_rows(victims, clean_pred, r.adversarial[li], adv_pred[li], group, lam)
                    for ti, t in enumerate(group):
                        name = f"noise/{self.key}-lambda{lam:g}_target{t}.npy"
                        files.save_npy(out / name, r.noise[li, ti])
                        saved["noise_files"][f"{lam:g}/{t}"] = name
                        for i, image in enumerate(r.adversarial[li, ti, :save_images]):
                            files.save_png(out / "images" / f"{self.key}-lambda{lam:g}_target{t}_{i}.png", image)
                        saved["history"][f"{lam:g}/{t}"] = {
                            k: v[:, li, ti].round(5).tolist() for k, v in r.history.items() if v.ndim == 3
                        }
                files.write_json(part, saved)
                log(
                    f"targets {group}: {time.time() - t0:.1f}s, ASR "
                    + " ".join(f"{x['target']}:{x['asr']:.2f}" for x in saved["rows"])
                )
            rows += saved["rows"]
            histories.update(saved["history"])
            noise_files.update(saved.get("noise_files", {}))
        progress.close()
        attack_progress.write_rp2_scalars(out, self.key, histories)
        record = rundir.StickerRecord(
            flags=dataclasses.asdict(self),
            rows=rows,
            aggregate=aggregate(rows, STOP),
            history=histories,
            clean_victim_accuracy=float(np.mean(clean_pred == STOP)),
            noise_files=noise_files,
            seed=self.seed,
            paper={k: paper.TABLE2["baseline"][k] for k in ("avg_asr", "worst_asr", "l2")}
            if self.mode == "whitebox" and self.model == rundir.ORIGINAL
            else None,
            versions=files.package_versions(),
            wall_seconds=time.time() - started,
        )
        _write_csv(out / rundir.CSV_FILE, record)
        record.write(out / rundir.RESULTS_FILE)
        return record


def load_victim_setting(model_spec, data_dir=None, mask="rectangles", mask_threshold=None):
    """(data_dir, victims, mask, classifier) for an attack on `model_spec`; the model is checked (a LISA
    classifier: 32x32x3 in, 18 classes out) before any data is read."""
    from blurnet_tf.data import find_data_dir, load_mask, load_victims

    data_dir = find_data_dir(data_dir)
    model = lisa_classifier(model_spec, data_dir)
    victims, _ = load_victims(data_dir)
    return data_dir, victims, load_mask(data_dir, mask, mask_threshold), model


def lisa_classifier(model_spec, data_dir=None):
    """The classifier of `model_spec`, refused unless it takes LISA's images and scores its classes; it
    computes in float32 whatever precision it was trained in (results are judged on the deployable model)."""
    from blurnet_tf.defences import classifier_of
    from blurnet_tf.registry import LISA_MODEL, load_model
    from blurnet_tf.registry.precision import compute_precision, with_precision

    model = classifier_of(load_model(model_spec, data_dir, expect=LISA_MODEL))
    return with_precision(model, "float32") if compute_precision(model) != "float32" else model


def stored_adversarials(attack_dir, victims, mask, lam):
    """(targets, adversarial victims [T, N, ...], record) of a finished run, rebuilt from its noise."""
    from blurnet_tf.evaluation.metrics import apply_sticker

    attack_dir = pathlib.Path(attack_dir)
    record = rundir.StickerRecord.read(attack_dir / rundir.RESULTS_FILE)
    if record is None:
        raise DataError(attack_dir / rundir.RESULTS_FILE, "attack results not found (run the white-box step first)")
    targets = sorted({r["target"] for r in record.rows if abs(r["lambda"] - lam) < 1e-12})
    adv = np.stack(
        [
            apply_sticker(victims, mask, np.load(record.noise_file(attack_dir, lam, t)), record.flags["noise_clip"])
            for t in targets
        ]
    )
    return targets, adv, record


def _check(ok, field, problem):
    if not ok:
        raise SettingError(field, problem)


def _key_of(settings):
    """The key of an attack's settings (its own or a record's flags); the digital attack keeps the key it had
    before EOT existed, so finished work stays finished."""
    settings = dict(settings)
    if not settings.get("physical_samples"):
        settings.pop("physical_samples", None)
    return rundir.settings_key(settings, 12)


def _refuse_other_settings(out, key):
    """One run directory holds one attack, finished or killed half-way: another's is never replaced."""
    existing = files.read_json(out / rundir.RESULTS_FILE)
    if existing is not None:
        old = rundir.StickerRecord.from_json(existing, out / rundir.RESULTS_FILE).flags if "rows" in existing else None
        if old is None or _key_of(old) != key:
            raise DataError(out, "holds the results of another attack; choose another --out")
    if any(not part.name.startswith(f"{key}-") for part in (out / "parts").glob("*.json")):
        raise DataError(out, "holds the unfinished parts of another attack; choose another --out")


def _read_part(part):
    if not part.is_file():
        return None
    try:
        return files.read_json(part, missing_ok=False)
    except DataError as exc:
        files.move_aside(part, f"unreadable ({exc.problem.split(';')[0]}); recomputing this target group")
        return None


def _nps_colors(data_dir):
    from blurnet_tf.data import load_nps_colors

    return load_nps_colors(data_dir)


def attack_transform(attack):
    """The low-frequency transform of eq. 8 for a lowfreq attack (any object with mode and dct_dim), else None."""
    from blurnet_tf.attacks import low_frequency

    return low_frequency(attack.dct_dim) if attack.mode == "lowfreq" else None


def attack_extra_loss(attack, model):
    """The regulariser an adaptive attack adds (eq. 9-11): the named one, else the model's own; None otherwise."""
    from blurnet_tf.defences import REGULARISERS, model_regulariser

    if attack.mode != "adaptive":
        return None
    if attack.regulariser:
        return REGULARISERS[attack.regulariser]
    own = model_regulariser(model)
    if own is None:
        raise SettingError("regulariser", f"{attack.model} has no feature-map regulariser; name one")
    return own[0]


def _write_csv(path, record):
    """One row kind: a (lambda, target) result; the aggregates are in results.json."""
    lines = [["model", "seed", "lambda", "target", "asr", "targeted", "l2"]]
    lines += [
        [record.flags["model"], record.seed, r["lambda"], r["target"], r["asr"], r["targeted"], r["l2"]]
        for r in record.rows
    ]
    files.write_csv(path, lines)
