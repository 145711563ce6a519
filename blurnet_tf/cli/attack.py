"""Attack a model with RP2 (white-box, transfer, low-frequency, adaptive) or PGD.

    python -m blurnet_tf.attack --model=original --flagfile=flags/attacks/whitebox.flags --out=DIR

Writes DIR/results.json and DIR/results.csv (per target and aggregate, flags, versions, wall
time), DIR/noise/*.npy and a few adversarial PNGs. Finished target groups are stored in
DIR/parts/ and skipped when a killed run is started again.
"""

import csv
import hashlib
import json
import os
import pathlib
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Attacked model: run directory, .keras file or 'original'.", required=True)
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_enum("mode", "whitebox", ["whitebox", "transfer", "lowfreq", "adaptive", "pgd"], "Attack mode.")
flags.DEFINE_string("source_model", None, "transfer: model the noise is optimised on.")
flags.DEFINE_string("mask", "rectangles", "rectangles, octagon, or a mask PNG path.")
flags.DEFINE_string("targets", "all", "'all' (every class but stop) or comma-separated indices.")
flags.DEFINE_list("lambdas", ["0.002"], "Lambda values swept in one call.")
flags.DEFINE_integer("epochs", 300, "RP2 epochs (Adam steps).")
flags.DEFINE_float("lr", 0.1, "RP2 Adam learning rate.")
flags.DEFINE_enum("norm", "l2", ["l2", "l1"], "Norm of the masked noise.")
flags.DEFINE_boolean("nps", False, "Add the non-printability score with the RP2 colour triplets.")
flags.DEFINE_float("noise_clip", 20.0, "Noise clipped to [-c, c].")
flags.DEFINE_enum("regulariser", None, ["tv", "tik_hf", "tik_pseudo"],
                  "adaptive: feature-map term added to the attack loss (default: the model's own; "
                  "Table V attacks the adversarially trained model with each).")
flags.DEFINE_integer("dct_dim", 16, "lowfreq: keep the top-left dim x dim DCT coefficients.")
flags.DEFINE_integer("seed", 0, "Noise initialisation seed.")
flags.DEFINE_integer("targets_per_call", 17, "Targets optimised together; a finished group survives a kill.")
flags.DEFINE_float("pgd_eps", 8 / 255, "pgd: L-inf radius (Table IV: 8/255).")
flags.DEFINE_float("pgd_step", 0.01, "pgd: step size (Table IV: 0.01).")
flags.DEFINE_integer("pgd_steps", 10, "pgd: iterations (Table IV: 10).")
flags.DEFINE_integer("save_images", 4, "Adversarial PNGs to write per target (first images).")

_RUN_FLAGS = ("model", "mode", "source_model", "mask", "targets", "lambdas", "epochs", "lr", "norm", "nps",
              "noise_clip", "regulariser", "dct_dim", "seed", "pgd_eps", "pgd_step", "pgd_steps")


def _targets(spec):
    from blurnet_tf.data import NUM_CLASSES, STOP

    if spec == "all":
        return [t for t in range(NUM_CLASSES) if t != STOP]
    try:
        targets = [int(t) for t in spec.split(",")]
    except ValueError:
        raise app.UsageError(f"--targets={spec}: use 'all' or comma-separated class indices") from None
    if not all(0 <= t < NUM_CLASSES for t in targets):
        raise app.UsageError(f"--targets={spec}: indices must be in [0, {NUM_CLASSES})")
    return targets


def _write_csv(path, rows, aggregates):
    lines = [["kind", "lambda", "target", "asr", "targeted", "l2"]]
    lines += [["target", r["lambda"], r["target"], r["asr"], r["targeted"], r["l2"]] for r in rows]
    lines += [[f"aggregate:{k}", "", "", v["avg_asr"], v["avg_targeted"], v["l2"]] for k, v in aggregates.items()]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(lines)
    os.replace(tmp, path)


def run_pgd(model, victims):
    """Table IV: untargeted PGD L-inf on the victims (cleverhans tf2)."""
    import numpy as np
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    from blurnet_tf.evaluation import metrics

    clean = metrics.predict_classes(model, victims)
    adv = projected_gradient_descent(lambda t: model(t, training=False), victims, FLAGS.pgd_eps, FLAGS.pgd_step,
                                     FLAGS.pgd_steps, np.inf, clip_min=0.0, clip_max=1.0, rand_init=False,
                                     sanity_checks=False).numpy()
    pred = metrics.predict_classes(model, adv)
    return {"asr": metrics.attack_success_rate(clean, pred), "l2": metrics.l2_dissimilarity(victims, adv),
            "paper": {"asr": 1.0, "l2_range": [0.44, 0.53]}}, adv


def main(argv):
    del argv
    import numpy as np

    from blurnet_tf import cli, files
    from blurnet_tf.attacks import low_frequency, rp2
    from blurnet_tf.data import STOP, find_data_dir, load_mask, load_nps_colors, load_victims
    from blurnet_tf.defences import classifier_of, model_regulariser
    from blurnet_tf.defences.regularizers import REGULARISERS
    from blurnet_tf.evaluation import metrics
    from blurnet_tf.evaluation.sticker_metrics import aggregate, per_target_rows
    from blurnet_tf import paper
    from blurnet_tf.registry import load_model

    started = time.time()
    out = pathlib.Path(FLAGS.out)
    data_dir = find_data_dir(FLAGS.data_dir)
    victims, _ = load_victims(data_dir)
    model = classifier_of(load_model(FLAGS.model, data_dir))
    config = cli.flag_values(flags, _RUN_FLAGS)
    result = {"flags": config, "versions": files.package_versions()}

    if FLAGS.mode == "pgd":
        result["pgd"], adv = run_pgd(model, victims)
        _save_pngs(out / "images", adv[:FLAGS.save_images], "pgd")
        print(f"PGD eps {FLAGS.pgd_eps:.4f}: ASR {result['pgd']['asr']:.3f}, L2 {result['pgd']['l2']:.3f}")
    else:
        mask = load_mask(data_dir, FLAGS.mask)
        attacked = model
        if FLAGS.mode == "transfer":
            if not FLAGS.source_model:
                raise app.UsageError("--mode=transfer needs --source_model")
            attacked = classifier_of(load_model(FLAGS.source_model, data_dir))
        extra = None
        if FLAGS.mode == "adaptive":
            if FLAGS.regulariser:
                extra = REGULARISERS[FLAGS.regulariser]
            else:
                reg = model_regulariser(model)
                if reg is None:
                    raise app.UsageError(f"--mode=adaptive: {FLAGS.model} has no feature-map regulariser; "
                                         "name one with --regulariser")
                extra = reg[0]
        kwargs = dict(lam=[float(v) for v in FLAGS.lambdas], epochs=FLAGS.epochs, lr=FLAGS.lr, norm=FLAGS.norm,
                      nps_colors=load_nps_colors(data_dir) if FLAGS.nps else None, noise_clip=FLAGS.noise_clip,
                      transform=low_frequency(FLAGS.dct_dim) if FLAGS.mode == "lowfreq" else None,
                      extra_loss=extra, seed=FLAGS.seed)
        clean_pred = metrics.predict_classes(model, victims)
        targets = _targets(FLAGS.targets)
        key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
        rows, histories = [], {}
        for start in range(0, len(targets), FLAGS.targets_per_call):
            group = targets[start:start + FLAGS.targets_per_call]
            part = out / "parts" / f"{key}-{'_'.join(map(str, group))}.json"
            if part.is_file():
                saved = json.loads(part.read_text())
                print(f"targets {group}: done in an earlier run, skipped", flush=True)
            else:
                t0 = time.time()
                r = rp2(attacked, victims, mask, group, **kwargs)
                adv = r.adversarial
                adv_pred = np.stack([metrics.predict_classes(model, a.reshape(-1, 32, 32, 3)).reshape(len(group), -1)
                                     for a in adv]) if FLAGS.mode == "transfer" else r.predictions
                saved = {"rows": [], "history": {}}
                for li, lam in enumerate(r.lambdas):
                    saved["rows"] += per_target_rows(victims, clean_pred, adv[li], adv_pred[li], group, lam)
                    for ti, t in enumerate(group):
                        np.save(files.ensure_dir(out / "noise") / f"lambda{lam:g}_target{t}.npy", r.noise[li, ti])
                        _save_pngs(out / "images", adv[li, ti, :FLAGS.save_images], f"lambda{lam:g}_target{t}")
                        saved["history"][f"{lam:g}/{t}"] = {k: v[:, li, ti].round(5).tolist() for k, v in r.history.items() if v.ndim == 3}
                files.write_json(part, saved)
                print(f"targets {group}: {time.time() - t0:.1f}s, ASR " +
                      " ".join(f"{x['target']}:{x['asr']:.2f}" for x in saved["rows"]), flush=True)
            rows += saved["rows"]
            histories.update(saved["history"])
        result.update({"rows": rows, "aggregate": aggregate(rows, STOP), "history": histories,
                       "clean_victim_accuracy": float(np.mean(clean_pred == STOP))})
        if FLAGS.mode == "whitebox" and FLAGS.model == "original":
            result["paper"] = {k: paper.TABLE2["baseline"][k] for k in ("avg_asr", "worst_asr", "l2")}
        for name, agg in result["aggregate"].items():
            print(f"{name}: avg ASR {agg['avg_asr']:.4f}, worst {agg['worst_asr']:.3f} (target "
                  f"{agg['worst_target']}), L2 {agg['l2']:.3f}")
        _write_csv(out / "results.csv", rows, result["aggregate"])
    result["wall_seconds"] = time.time() - started
    files.write_json(out / "results.json", result)


def _save_pngs(folder, images, prefix):
    import cv2
    import numpy as np

    from blurnet_tf import files

    files.ensure_dir(folder)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{prefix}_{i}.png"), (np.clip(image, 0, 1)[..., ::-1] * 255).round().astype(np.uint8))


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
