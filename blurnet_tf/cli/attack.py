"""Attack a model with RP2 (white-box, transfer, low-frequency, adaptive) or PGD.

    python -m blurnet_tf.cli.attack --model=original --flagfile=flags/attacks/whitebox.flags --out=DIR

Writes DIR/results.json (settings, one row per lambda and target, aggregates, loss curves),
DIR/results.csv (one row per lambda and target), DIR/noise/<key>-*.npy and a few adversarial
PNGs. Finished target groups are kept in DIR/parts/ and skipped when a killed run is started
again. One directory holds one attack: another attack's results there are never replaced.
"""

from absl import flags

from blurnet_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Attacked model: run directory, .keras file or 'original'.", required=True)
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Write into an --out holding files an attack did not write (a run directory "
    "records which command made it); without it such an --out is refused.",
)
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_enum("mode", "whitebox", ["whitebox", "transfer", "lowfreq", "adaptive", "pgd"], "Attack mode.")
flags.DEFINE_string("source_model", None, "transfer: model the noise is optimised on.")
flags.DEFINE_string("mask", "rectangles", "rectangles, octagon, or a mask PNG path (black and white).")
flags.DEFINE_float("mask_threshold", None, "Read a grey-level mask: pixels above this are sticker.")
flags.DEFINE_string("targets", "all", "'all' (every class but stop) or comma-separated indices.")
flags.DEFINE_list("lambdas", ["0.002"], "Lambda values swept in one call.")
flags.DEFINE_integer("epochs", 300, "RP2 epochs (Adam steps).")
flags.DEFINE_float("lr", 0.1, "RP2 Adam learning rate.")
flags.DEFINE_enum("norm", "l2", ["l2", "l1"], "Norm of the masked noise.")
flags.DEFINE_boolean("nps", False, "Add the non-printability score with the RP2 colour triplets.")
flags.DEFINE_float("noise_clip", 20.0, "Noise clipped to [-c, c].")
flags.DEFINE_enum(
    "regulariser",
    None,
    ["tv", "tik_hf", "tik_pseudo"],
    "adaptive: feature-map term added to the attack loss (default: the model's own; "
    "Table V attacks the adversarially trained model with each).",
)
flags.DEFINE_integer("dct_dim", 16, "lowfreq: keep the top-left dim x dim DCT coefficients.")
flags.DEFINE_integer("seed", 0, "Noise initialisation seed.")
flags.DEFINE_integer("targets_per_call", 17, "Targets optimised together; a finished group survives a kill.")
flags.DEFINE_float("pgd_eps", 8 / 255, "pgd: L-inf radius (Table IV: 8/255).")
flags.DEFINE_float("pgd_step", 0.01, "pgd: step size (Table IV: 0.01).")
flags.DEFINE_integer("pgd_steps", 10, "pgd: iterations (Table IV: 10).")
flags.DEFINE_enum(
    "precision",
    "float32",
    ["float32", "mixed_bfloat16"],
    "Compute precision of the attacked model (losses, noise and scoring stay float32).",
)
flags.DEFINE_integer("save_images", 4, "Adversarial PNGs to write per target (first images).")
flags.DEFINE_integer(
    "physical_samples",
    0,
    "RP2 in expectation over viewing conditions (attacks.PhysicalConditions): views of every victim a step; "
    "0 = the digital attack.",
)


def settings():
    """The experiment the flags describe (every range checked there)."""
    from blurnet_tf.experiments.pgd_linf import PgdAttack
    from blurnet_tf.experiments.rp2_stickers import ALL_TARGETS, StickerAttack

    if FLAGS.mode == "pgd":
        if FLAGS.physical_samples:
            raise cli.SettingError("physical_samples", "is for the RP2 modes; --mode=pgd attacks the photographs")
        return PgdAttack(
            model=FLAGS.model,
            pgd_eps=FLAGS.pgd_eps,
            pgd_step=FLAGS.pgd_step,
            pgd_steps=FLAGS.pgd_steps,
            seed=FLAGS.seed,
            precision=FLAGS.precision,
            data_dir=FLAGS.data_dir,
        )
    targets = ALL_TARGETS if FLAGS.targets == "all" else cli.int_list("targets", FLAGS.targets)
    return StickerAttack(
        model=FLAGS.model,
        mode=FLAGS.mode,
        lambdas=cli.float_list("lambdas", FLAGS.lambdas),
        targets=targets,
        epochs=FLAGS.epochs,
        lr=FLAGS.lr,
        norm=FLAGS.norm,
        mask=FLAGS.mask,
        mask_threshold=FLAGS.mask_threshold,
        nps=FLAGS.nps,
        noise_clip=FLAGS.noise_clip,
        source_model=FLAGS.source_model,
        regulariser=FLAGS.regulariser,
        dct_dim=FLAGS.dct_dim,
        seed=FLAGS.seed,
        precision=FLAGS.precision,
        data_dir=FLAGS.data_dir,
        physical_samples=FLAGS.physical_samples,
    )


def main(argv):
    del argv
    cli.check_model(FLAGS.model)  # a missing or broken file: one line before TensorFlow loads
    attack = settings()
    if FLAGS.save_images < 0:
        raise cli.SettingError("save_images", f"expected an integer >= 0, got {FLAGS.save_images}")
    if FLAGS.mode == "pgd":
        attack.run(
            FLAGS.out, save_images=FLAGS.save_images, log=lambda m: print(m, flush=True), overwrite=FLAGS.overwrite
        )
        return
    record = attack.run(
        FLAGS.out,
        targets_per_call=FLAGS.targets_per_call,
        save_images=FLAGS.save_images,
        log=lambda m: print(m, flush=True),
        overwrite=FLAGS.overwrite,
    )
    for name, agg in record.aggregate.items():
        print(
            f"{name}: avg ASR {agg['avg_asr']:.4f}, worst {agg['worst_asr']:.3f} (target "
            f"{agg['worst_target']}), L2 {agg['l2']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    cli.run(main)
