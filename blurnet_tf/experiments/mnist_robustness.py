"""Defend++'s Tables 1-2 for one MNIST model: accuracy under clean, FGSM, BIM, C&W L2 and DDN on
the first `images` of its test split; on request its Fig. 7 FGSM curve and the attack-strength
checks. With `source_model`, the gradient attacks are crafted on that model and scored on this one
(the paper's Tables 7-8). Every finished attack is kept in parts/ and skipped when a killed run is
started again with the same settings."""

import dataclasses
import pathlib
import time

from blurnet_tf import files, locks, rundir
from blurnet_tf.errors import DataError, SettingError
from blurnet_tf.experiments import attack_progress
from blurnet_tf.evaluation.mnist_attack_suite import ATTACKS, CHECK_FIELDS, CHECKS, TRANSFERABLE, AttackBudget


@dataclasses.dataclass(frozen=True)
class MnistRobustness:
    model: str
    attacks: tuple = ATTACKS
    images: int = 1000  # 0: all
    budget: AttackBudget = AttackBudget()
    test_fraction: float = 0.3  # used only when the model has no record
    split_seed: int = 0
    data_dir: str | None = None
    source_model: str | None = None  # craft the gradient attacks on this model (transfer)

    def __post_init__(self):
        unknown = sorted(set(self.attacks) - set(ATTACKS + CHECKS))
        if unknown:
            raise SettingError("attacks", f"unknown {unknown}; choose from {', '.join(ATTACKS + CHECKS)}")
        untransferable = sorted(set(self.attacks) - set(TRANSFERABLE))
        if self.source_model is not None and untransferable:
            raise SettingError(
                "attacks", f"{untransferable} cannot be made on --source_model; choose from {', '.join(TRANSFERABLE)}"
            )
        if self.images < 0:
            raise SettingError("images", f"expected an integer >= 0, got {self.images}")

    def run(self, out, log=print, overwrite=False):
        from blurnet_tf.data import find_data_dir, load_test_split
        from blurnet_tf.evaluation.mnist_attack_suite import evaluate
        from blurnet_tf.registry import MNIST_MODEL, load_model

        out = pathlib.Path(out)
        for flag, spec in (("model", self.model), ("source_model", self.source_model)):
            if spec == rundir.ORIGINAL:  # the RP2 authors' LISA-CNN
                raise SettingError(flag, "'original' is the LISA-CNN; expected an MNIST run directory or .keras file")
        dataset, test_fraction, split_seed = rundir.trained_split(
            self.model, ("mnist", self.test_fraction, self.split_seed)
        )
        if dataset != "mnist":
            raise DataError(
                self.model, f"trained on {dataset}, not MNIST (attack LISA models with blurnet_tf.cli.attack)"
            )
        if self.source_model is not None:
            split = (dataset, test_fraction, split_seed)
            source_split = rundir.trained_split(self.source_model, ("mnist", self.test_fraction, self.split_seed))
            if source_split != split:
                raise DataError(
                    self.source_model,
                    f"test split (dataset, fraction, seed) {source_split} is not the "
                    f"model's {split}; transfer needs one split",
                )
        locks.claim_dir(out, rundir.MNIST_ATTACKS_WRITER, overwrite)
        with locks.RunLock(out):
            model = load_model(self.model, expect=MNIST_MODEL)  # checked before any data is read
            source = None if self.source_model is None else load_model(self.source_model, expect=MNIST_MODEL)
            x, y = load_test_split(find_data_dir(self.data_dir), dataset, test_fraction, split_seed)
            if self.images:
                x, y = x[: self.images], y[: self.images]
            locks.mark_owner(out, rundir.MNIST_ATTACKS_WRITER)
            settings = {
                "model": self.model,
                "images": int(len(y)),
                "test_fraction": test_fraction,
                "split_seed": split_seed,
                "budget": dataclasses.asdict(self.budget),
            }
            if source is not None:  # only then, so white-box parts written before it existed stay valid
                settings["source_model"] = self.source_model
            results = {}
            progress = attack_progress.bar(len(self.attacks), f"MNIST attacks on {self.model}", unit="attack")
            for i, name in enumerate(self.attacks, 1):
                part = files.read_json(out / "parts" / f"{name}.json")
                key = _part_key(settings, name)
                if part is not None and part.get("key") == key:
                    results[name] = part["result"]
                    log(f"[{i}/{len(self.attacks)}] {name}: done earlier, skipped")
                    progress.update(1)
                    continue
                started = time.time()
                results[name] = {**evaluate(name, model, x, y, self.budget, source), "seconds": time.time() - started}
                files.write_json(out / "parts" / f"{name}.json", {"key": key, "result": results[name]})
                r = results[name]
                checks = "" if "passed" not in r else f", checks {'passed' if r['passed'] else 'FAILED'}"
                log(
                    f"[{i}/{len(self.attacks)}] {name}: accuracy {100 * r['accuracy']:.2f}%{checks} "
                    f"({time.time() - started:.0f}s)"
                )
                progress.update(1)
            progress.close()
            files.write_json(
                out / rundir.RESULTS_FILE,
                {
                    "kind": rundir.MNIST_ROBUSTNESS_KIND,
                    **settings,
                    "source_model": self.source_model,
                    "results": results,
                    "versions": files.package_versions(),
                },
            )
            files.write_csv(
                out / rundir.CSV_FILE,
                [["model", "attack", "accuracy", "accuracy_any_norm", "median_l2", "seconds"]]
                + [
                    [self.model, n, r["accuracy"], r.get("accuracy_any_norm", ""), r.get("median_l2", ""), r["seconds"]]
                    for n, r in results.items()
                ],
            )
        return results


def _part_key(settings, name):
    """A part's key covers what it depends on: the checks' ε grids enter only the checks' keys, so
    parts written before those budget fields existed stay valid."""
    if name not in CHECKS:
        settings = {**settings, "budget": {k: v for k, v in settings["budget"].items() if k not in CHECK_FIELDS}}
    return rundir.settings_key(settings)
