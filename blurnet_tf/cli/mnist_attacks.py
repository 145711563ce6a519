"""Accuracy of an MNIST model under Defend++'s attacks: clean, FGSM, BIM, C&W L2, DDN.

    python -m blurnet_tf.cli.mnist_attacks --model=runs/mnist/defendpp --out=runs/mnist/robustness/defendpp

Attacks the first --images images of the model's own MNIST test split (read from its
metrics.json). Writes OUT/results.json and OUT/results.csv; every finished attack is kept in
OUT/parts/ and skipped when a killed run is started again with the same settings.
"""

import dataclasses

from absl import flags

from blurnet_tf import cli

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


def settings():
    from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget
    from blurnet_tf.experiments.mnist_robustness import MnistRobustness

    set_budget = {f.name: FLAGS[f.name].value for f in dataclasses.fields(AttackBudget) if FLAGS[f.name].value is not None}
    return MnistRobustness(model=FLAGS.model, attacks=tuple(FLAGS.attacks), images=FLAGS.images,
                           budget=AttackBudget(**set_budget), test_fraction=FLAGS.test_fraction,
                           split_seed=FLAGS.split_seed, data_dir=FLAGS.data_dir)


def main(argv):
    del argv
    settings().run(FLAGS.out, log=lambda m: print(m, flush=True))
    print(f"wrote {FLAGS.out}/results.json", flush=True)


if __name__ == "__main__":
    cli.run(main)
