"""Accuracy of an MNIST model under Defend++'s attacks: clean, FGSM, BIM, C&W L2, DDN.

    python -m blurnet_tf.robustness --model=runs/mnist/defendpp --out=runs/mnist/robustness/defendpp

Attacks the first --images images of the model's own MNIST test split (read from its
metrics.json). Writes OUT/results.json and OUT/results.csv; every finished attack is kept in
OUT/parts/ and skipped when a killed run is started again with the same settings.
"""

import csv
import dataclasses
import hashlib
import json
import pathlib
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory (with model.keras and metrics.json) or .keras file.", required=True)
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_list("attacks", ["clean", "fgsm", "bim", "cw", "ddn"], "Attacks to run.")
flags.DEFINE_integer("images", 1000, "Test images attacked (the first N of the test split); 0 = all.")
# Attack budget; unset ones take AttackBudget's defaults (the paper's settings where it gives them).
flags.DEFINE_float("fgsm_eps", None, "FGSM L-inf eps (paper: 0.2 on MNIST).")
flags.DEFINE_float("bim_eps", None, "BIM L-inf eps (not stated in the paper: FGSM's).")
flags.DEFINE_integer("bim_steps", None, "BIM iterations (paper: 100).")
flags.DEFINE_float("bim_step", None, "BIM step size.")
flags.DEFINE_integer("cw_search", None, "C&W binary-search steps (paper: 5).")
flags.DEFINE_integer("cw_steps", None, "C&W iterations per search step (paper: 20).")
flags.DEFINE_float("cw_learning_rate", None, "C&W Adam learning rate.")
flags.DEFINE_integer("ddn_steps", None, "DDN steps.")
flags.DEFINE_float("l2_budget", None, "C&W / DDN: an adversarial counts only within this L2 norm.")
flags.DEFINE_float("test_fraction", 0.3, "MNIST test fraction, when the model has no metrics.json.")
flags.DEFINE_integer("split_seed", 0, "MNIST split seed, when the model has no metrics.json.")


def main(argv):
    del argv
    from blurnet_tf import files
    from blurnet_tf.data import find_data_dir, load_test_split, trained_split
    from blurnet_tf.evaluation.mnist_attack_suite import ATTACKS, AttackBudget, adversarial, score
    from blurnet_tf.registry import load_model

    unknown = set(FLAGS.attacks) - set(ATTACKS)
    if unknown:
        raise app.UsageError(f"--attacks: unknown {sorted(unknown)}; choose from {', '.join(ATTACKS)}")
    budget = AttackBudget(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(AttackBudget)
                             if FLAGS[f.name].value is not None})
    data_dir = find_data_dir(FLAGS.data_dir)
    dataset, test_fraction, split_seed = trained_split(FLAGS.model, ("mnist", FLAGS.test_fraction, FLAGS.split_seed))
    if dataset != "mnist":
        raise app.UsageError(f"{FLAGS.model}: trained on {dataset}, not MNIST (attack LISA models with "
                             "blurnet_tf.attack)")
    x, y = load_test_split(data_dir, dataset, test_fraction, split_seed)
    if FLAGS.images:
        x, y = x[:FLAGS.images], y[:FLAGS.images]
    model = load_model(FLAGS.model)
    out = pathlib.Path(FLAGS.out)
    settings = {"model": FLAGS.model, "images": int(len(y)), "test_fraction": test_fraction,
                "split_seed": split_seed, "budget": dataclasses.asdict(budget)}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    results = {}
    for i, name in enumerate(FLAGS.attacks, 1):
        part = out / "parts" / f"{name}.json"
        if part.is_file() and json.loads(part.read_text()).get("key") == key:
            results[name] = json.loads(part.read_text())["result"]
            print(f"[{i}/{len(FLAGS.attacks)}] {name}: done earlier, skipped", flush=True)
            continue
        started = time.time()
        adv = adversarial(name, model, x, y, budget)
        results[name] = {**score(model, x, y, adv, name, budget), "seconds": time.time() - started}
        files.write_json(part, {"key": key, "result": results[name]})
        print(f"[{i}/{len(FLAGS.attacks)}] {name}: accuracy {100 * results[name]['accuracy']:.2f}% "
              f"({time.time() - started:.0f}s)", flush=True)

    files.write_json(out / "results.json", {**settings, "results": results, "versions": files.package_versions()})
    tmp = out / ".results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["attack", "accuracy", "accuracy_any_norm", "median_l2", "seconds"])
        for name, r in results.items():
            writer.writerow([name, r["accuracy"], r.get("accuracy_any_norm", ""), r.get("median_l2", ""),
                             r["seconds"]])
    tmp.replace(out / "results.csv")
    print(f"wrote {out / 'results.json'}", flush=True)


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
