"""Accuracy of an MNIST model under Defend++'s attacks: clean, FGSM, BIM, C&W L2, DDN; on request
Fig. 7's FGSM curve (fgsm_curve) and the gradient-masking checks (strength_checks).

    python -m blurnet_tf.cli.mnist_attacks --model=runs/mnist/defendpp --out=runs/mnist/robustness/defendpp
    python -m blurnet_tf.cli.mnist_attacks --model=M --source_model=S --attacks=clean,fgsm,bim,fgsm_curve --out=OUT

Attacks the first --images images of the model's own MNIST test split (read from its
metrics.json). With --source_model, FGSM, BIM and the FGSM curve are made on that model (which
must have the same test split) and scored on --model (transfer, the paper's Tables 7-8).
Writes OUT/results.json and OUT/results.csv; every finished attack is kept in OUT/parts/ and
skipped when a killed run is started again with the same settings.
"""

import dataclasses

from absl import flags

from blurnet_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory (with model.keras and metrics.json) or .keras file.", required=True)
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Write into an --out holding files mnist_attacks did not write (a run directory "
    "records which command made it); without it such an --out is refused.",
)
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_string(
    "source_model",
    None,
    "Make the gradient attacks on this model and score them on --model "
    "(transfer); only clean, fgsm, bim and fgsm_curve.",
)
flags.DEFINE_list(
    "attacks",
    ["clean", "fgsm", "bim", "cw", "ddn"],
    "Attacks to run: clean, fgsm, bim, cw, ddn (Tables 1-2), fgsm_curve (Fig. 7), strength_checks "
    "(is the model weakening the attacks?).",
)
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
flags.DEFINE_list("fgsm_curve_eps", None, "fgsm_curve: the FGSM eps values (paper's Fig. 7: 0.1, 0.2, ..., 1.0).")
flags.DEFINE_list("strength_bim_eps", None, "strength_checks: BIM's accuracy must not rise along these eps.")
flags.DEFINE_float("test_fraction", 0.3, "MNIST test fraction, when the model has no metrics.json.")
flags.DEFINE_integer("split_seed", 0, "MNIST split seed, when the model has no metrics.json.")


def settings():
    from blurnet_tf import paper

    known = paper.DEFENDPP_ATTACKS + paper.DEFENDPP_CHECKS  # checked before TensorFlow loads
    unknown = sorted(set(FLAGS.attacks) - set(known))
    if unknown:
        raise cli.SettingError("attacks", f"unknown {unknown}; choose from {', '.join(known)}")
    from blurnet_tf.evaluation.mnist_attack_suite import CHECK_FIELDS, AttackBudget
    from blurnet_tf.experiments.mnist_robustness import MnistRobustness

    set_budget = {
        f.name: FLAGS[f.name].value for f in dataclasses.fields(AttackBudget) if FLAGS[f.name].value is not None
    }
    set_budget.update({n: cli.float_list(n, set_budget[n]) for n in CHECK_FIELDS if n in set_budget})
    return MnistRobustness(
        model=FLAGS.model,
        attacks=tuple(FLAGS.attacks),
        images=FLAGS.images,
        budget=AttackBudget(**set_budget),
        test_fraction=FLAGS.test_fraction,
        split_seed=FLAGS.split_seed,
        data_dir=FLAGS.data_dir,
        source_model=FLAGS.source_model,
    )


def main(argv):
    del argv
    cli.check_model(FLAGS.model)  # a missing or broken file: one line before TensorFlow loads
    settings().run(FLAGS.out, log=lambda m: print(m, flush=True), overwrite=FLAGS.overwrite)
    print(f"wrote {FLAGS.out}/results.json", flush=True)


if __name__ == "__main__":
    cli.run(main)
