"""benchmark(): the evaluation our reports give the papers' models, for any Keras classifier (or
callable images -> logits) on the user's own data, as flat records (RobustBench's `benchmark` is the
model). The CLI (`python -m blurnet_tf.cli.benchmark`) writes the same records.

Threat models (each judged on the images the model classifies correctly, as the papers do):
  clean    accuracy on every image;
  Linf     RobustBench's: AutoAttack-strength L∞ (APGD-CE, APGD-T, Square; attacks.autoattack) at each
           `linf_eps` (8/255), one run per seed, an image robust only if it survives every run: robust
           accuracy and ASR per ε (a list of ε gives accuracy against ε);
  L2       RobustBench's: the same in L2 at each `l2_eps` (0.5);
  linf     PGD L∞ (cleverhans) at each `linf_eps`, Madry's step 2.5ε/steps, one random start per seed; an
           image counts as robust only if it survives every start: robust accuracy and ASR;
  l2       DDN, minimum-norm L2: the median norm that flips an image (inf where none was found) and
           the share flipped;
  sticker  RP2 (eq. 1, λ `rp2_lambda`) with `mask` towards each of `targets`, its noise seeded by each
           seed: per target the share of images whose prediction moved (the paper's ASR), with the
           average and worst over targets;
  physical RP2's own threat model: the sticker optimised in expectation over viewing conditions
           (attacks.PhysicalConditions, `physical_samples` views a step), then scored on the held-out
           stationary grid (attacks.STATIONARY_GRID, 5 distances x 3 angles and two lightings): per target and
           condition the share of images whose prediction under the condition differs from the clean image's
           under it, with the mean over the grid per target and the average over targets;
  autoattack  the same attack as Linf under its older name (the robustness profile's records keep it),
           one run per seed, an image robust only if it survives every run: robust accuracy and ASR;
  checks   the attack-strength checks (evaluation.attack_strength): one record per check (1 held,
           0 failed) and `checks_passed`; the transfer check needs `source`, the RP2 ones `targets`
           (and `mask`).
Intervals: Wilson 95% over images (a single seed), or the hierarchical bootstrap over seeds, targets and
images for the sticker's average ASR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import math

import numpy as np

from blurnet_tf.attacks import autoattack, ddn, linf_attack, madry_step, rp2
from blurnet_tf.attacks.autoattack_linf import ATTACKS as AA_ATTACKS
from blurnet_tf.attacks.autoattack_linf import AttackName, Norm
from blurnet_tf.evaluation import intervals
from blurnet_tf.evaluation.attack_strength import strength_checks
from blurnet_tf.evaluation.input_checks import check_inputs, check_source
from blurnet_tf.evaluation.metrics import predict_classes
from blurnet_tf.ranges import MAX_VIEWS, is_number

from blurnet_tf.evaluation.threat_models import ThreatModel, radii, radii_problem, unknown_threat_models


def benchmark(  # noqa: C901 - one branch per threat model; issue 42 moves them to a table
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    threat_models: Sequence[ThreatModel] | ThreatModel = ("clean", "linf", "l2"),
    targets: Sequence[int] | None = None,
    mask: np.ndarray | None = None,
    seeds: Sequence[int] = (0,),
    n_examples: int | None = None,
    linf_eps: float | Sequence[float] = 8 / 255,
    l2_eps: float | Sequence[float] = 0.5,
    linf_steps: int = 50,
    linf_step: float | None = None,
    linf_random_start: bool = True,
    ddn_steps: int = 100,
    rp2_epochs: int = 300,
    rp2_lambda: float = 0.002,
    physical_samples: int = 4,
    autoattack_steps: int = 100,
    square_queries: int = 5000,
    autoattack_attacks: Sequence[AttackName] = ("apgd-ce", "apgd-t", "square"),
    source: Any = None,
    check_steps: int = 50,
    check_rp2_epochs: int = 30,
    check_eps_scale: Sequence[float] = (0.125, 0.25, 0.5, 1.0, 2.0),
    name: str = "model",
    batch_size: int | None = None,
    verbose: int = 1,
) -> list[dict[str, Any]]:
    """Evaluate a classifier under the given threat models, as flat records (one per number).

    Clean accuracy is always recorded; each attack is judged on the correctly classified images (the
    module docstring describes every threat model). Intervals are Wilson 95% over images, or the
    hierarchical bootstrap over seeds, targets and images for the sticker's average and worst ASR.

    Parameters
    ----------
    model : Any
        A Keras classifier or a callable from images [N, H, W, C] to logits [N, classes].
    images : np.ndarray
        Float images [N, H, W, C] in [0, 1].
    labels : np.ndarray
        Integer class labels [N].
    threat_models : sequence of ThreatModel, or one name
        Any of "clean", "Linf", "L2" (RobustBench's names: AutoAttack), "linf" (PGD), "l2" (DDN), "sticker", "physical",
        "autoattack" (Linf's older name), "checks"; default ("clean", "linf", "l2").
    targets : sequence of int or None
        Target classes of the sticker attack and of the RP2 checks; "sticker" needs them.
    mask : np.ndarray or None
        The sticker's 0/1 mask, one image's shape [H, W, C]; "sticker" needs it.
    seeds : sequence of int
        At least one; one PGD start, AutoAttack run and RP2 noise per seed (the checks use the first).
    n_examples : int or None
        Evaluate only the first n_examples images (>= 1); None: all.
    linf_eps : float or sequence of float
        The L∞ radii in (0, 1] of PGD and AutoAttack, each its own records, and (the first) of the checks;
        default 8/255.
    l2_eps : float or sequence of float
        The L2 radii (> 0) of the L2 AutoAttack; default 0.5 (RobustBench's).
    linf_steps : int
        PGD's steps (this and every count below: an integer >= 1); default 50.
    linf_step : float or None
        PGD's step in (0, the smallest linf_eps]; None: Madry's 2.5 ε / steps.
    linf_random_start : bool
        Start PGD at a random point per seed; False starts at the image, one run (BlurNet's Table IV:
        step 0.01, 10 steps). Default True.
    ddn_steps : int
        DDN's steps; default 100.
    rp2_epochs : int
        The sticker attack's RP2 epochs; default 300.
    rp2_lambda : float
        RP2's λ (eq. 1), finite and >= 0, of the sticker attack and the checks; default 0.002.
    batch_size : int or None
        Images per call of PGD, DDN and AutoAttack (None: all at once); RP2 keeps every image in one call (its
        sticker is one noise shared by all the images). PGD's random starts and AutoAttack's draws are taken batch
        by batch, so another batch size gives other, equally strong, draws.
    verbose : int
        1: a tqdm bar over the threat models (shown on a terminal); 0: none.
    physical_samples : int
        The physical threat model's views of every image a step (EOT); default 4. Its RP2 runs rp2_epochs.
    autoattack_steps : int
        The iterations of each APGD run within AutoAttack; default 100 (AutoAttack's standard version).
    square_queries : int
        Square's query budget within AutoAttack; default 5000.
    autoattack_attacks : sequence of str
        A non-empty subset of ("apgd-ce", "apgd-t", "square"); ("apgd-ce", "apgd-t") for a randomised
        defence behind an EOT stand-in (AutoAttack's "rand" version leaves Square out).
    source : Any
        A second model (e.g. the undefended one) that the `checks` transfer attack is crafted on; None skips it.
    check_steps : int
        PGD steps of the checks; default 50.
    check_rp2_epochs : int
        RP2 epochs of the checks; default 30.
    check_eps_scale : Sequence[float]
        The checks' ε grid as multiples of `linf_eps` (capped at 1); default 1/8 ... 2 (1-16/255 at 8/255).
    name : str
        The records' `model` field; default "model".

    Returns
    -------
    list of dict
        Records {experiment "benchmark", model, threat_model, attack, budget, seed (None: over every
        seed), target, metric, value, interval [lo, hi], images, seeds}.

    Raises
    ------
    ValueError
        Naming the argument, if a threat model is unknown, "sticker" lacks mask or targets, seeds is
        empty, a number is out of its range, or images, labels, mask, targets, model or source do not fit.
    """
    threat_models = (threat_models,) if isinstance(threat_models, str) else tuple(threat_models)  # "linf": one name
    unknown = unknown_threat_models(threat_models)
    if unknown:
        raise ValueError(f"threat_models: {unknown}")
    for needs in ("sticker", "physical"):
        if needs in threat_models and (mask is None or targets is None):
            raise ValueError(f"threat_models: {needs!r} needs mask= (0/1, one image's shape) and targets= (classes)")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    linf_values, l2_values = radii(linf_eps), radii(l2_eps)
    for radius_arg, given in (("linf_eps", linf_eps), ("l2_eps", l2_eps)):
        problem = radii_problem(radius_arg, given)
        if problem:
            raise ValueError(f"{radius_arg}: {problem}, got {given!r}")
    for arg, value, ok, expected in (
        (
            "linf_step",
            linf_step,
            linf_step is None or (is_number(linf_step) and 0 < linf_step <= min(linf_values, default=0)),
            "a step in (0, linf_eps] or None",
        ),
        (
            "autoattack_attacks",
            autoattack_attacks,
            bool(autoattack_attacks) and set(autoattack_attacks) <= set(AA_ATTACKS),
            f"a non-empty subset of {', '.join(AA_ATTACKS)}",
        ),
        ("rp2_lambda", rp2_lambda, is_number(rp2_lambda) and rp2_lambda >= 0, "a finite number >= 0"),
        (
            "check_eps_scale",
            check_eps_scale,
            bool(check_eps_scale)
            and all(isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in check_eps_scale),
            "positive multiples of linf_eps",
        ),
        *(
            (n, v, isinstance(v, int) and v >= 1, "an integer >= 1")
            for n, v in (
                ("linf_steps", linf_steps),
                ("ddn_steps", ddn_steps),
                ("rp2_epochs", rp2_epochs),
                ("autoattack_steps", autoattack_steps),
                ("square_queries", square_queries),
                ("check_rp2_epochs", check_rp2_epochs),
                ("check_steps", check_steps),
            )
        ),
        (
            "physical_samples",
            physical_samples,
            type(physical_samples) is int and 1 <= physical_samples <= MAX_VIEWS,
            f"an integer in 1..{MAX_VIEWS}",
        ),
        (
            "batch_size",
            batch_size,
            batch_size is None or (type(batch_size) is int and batch_size >= 1),
            "an integer >= 1 or None",
        ),
        (
            "n_examples",
            n_examples,
            n_examples is None or (isinstance(n_examples, int) and n_examples >= 1),
            "an integer >= 1 or None",
        ),
    ):
        if not ok:
            raise ValueError(f"{arg}: expected {expected}, got {value!r}")
    linf_values, l2_values = [float(e) for e in linf_values], [float(e) for e in l2_values]  # NumPy scalars too
    x, y, classes = check_inputs(model, images, labels, mask, targets)
    if source is not None:
        check_source(source, x, classes)
    x, y = (x[:n_examples], y[:n_examples]) if n_examples else (x, y)

    records = []

    def add(threat, attack, budget, metric, value, interval=None, images=None, target=None, seed=None):
        records.append(
            {
                "experiment": "benchmark",
                "model": name,
                "threat_model": threat,
                "attack": attack,
                "budget": budget,
                "seed": seed,
                "target": target,
                "metric": metric,
                "value": float("nan") if value is None else float(value),
                "interval": interval,
                "images": images,
                "seeds": list(seeds),
            }
        )

    from tqdm.auto import tqdm

    jobs = sum(len(linf_values) for t in ("linf", "Linf", "autoattack") if t in threat_models) + len(l2_values) * (
        "L2" in threat_models
    )
    jobs += sum(t in threat_models for t in ("l2", "sticker", "physical", "checks"))
    progress = tqdm(total=jobs, desc=f"benchmark {name}", unit="attack", leave=False, disable=None if verbose else True)
    correct = predict_classes(model, x) == y
    add("clean", "none", "", "accuracy", correct.mean(), intervals.wilson(correct.sum(), len(y)), len(y))
    xc, yc = x[correct], y[correct]

    def robust_records(threat, attack, budget, robust):
        add(
            threat,
            attack,
            budget,
            "robust_accuracy",
            robust.sum() / len(y),
            intervals.wilson(robust.sum(), len(y)),
            len(y),
        )
        add(
            threat,
            attack,
            budget,
            "asr",
            1 - robust.mean() if len(yc) else float("nan"),
            intervals.wilson((~robust).sum(), len(yc)),
            len(yc),
        )

    for eps in linf_values if "linf" in threat_models else ():
        step = linf_step or madry_step(eps, linf_steps)
        robust = np.ones(len(yc), bool)
        starts = seeds if linf_random_start else seeds[:1]  # from the image, PGD is deterministic: one run
        for seed in starts if len(yc) else ():
            chunk = batch_size or len(yc)
            adv = np.concatenate(
                [
                    linf_attack(
                        model,
                        xc[i : i + chunk],
                        eps=eps,
                        steps=linf_steps,
                        step_size=step,
                        y=yc[i : i + chunk],
                        rand_init=linf_random_start,
                        seed=seed + i // chunk,  # each chunk its own random starts
                    ).adversarial
                    for i in range(0, len(yc), chunk)
                ]
            )
            robust &= predict_classes(model, adv) == yc
        progress.update()
        start = f"restarts={len(seeds)}" if linf_random_start else "start=image"
        robust_records("linf", "pgd", f"eps={eps:.6g}, steps={linf_steps}, step={step:.4g}, {start}", robust)

    def autoattack_records(threat: str, norm: Norm, eps: float) -> None:
        robust = np.ones(len(yc), bool)
        for seed in seeds:
            if robust.any():
                robust[robust] &= ~autoattack(
                    model,
                    xc[robust],
                    yc[robust],
                    norm=norm,
                    eps=eps,
                    attacks=autoattack_attacks,
                    steps=autoattack_steps,
                    square_queries=square_queries,
                    seed=seed,
                    batch_size=batch_size,
                ).success
        robust_records(
            threat,
            "+".join(autoattack_attacks),
            f"eps={eps:.6g}, steps={autoattack_steps}, square_queries={square_queries}, runs={len(seeds)}",
            robust,
        )

    runs: tuple[tuple[str, Norm, list[float]], ...] = (
        ("Linf", "Linf", linf_values),
        ("L2", "L2", l2_values),
        ("autoattack", "Linf", linf_values),
    )
    for threat, norm, values in runs:
        for eps in values if threat in threat_models else ():
            autoattack_records(threat, norm, eps)
            progress.update()
    if "l2" in threat_models and len(yc):
        found = ddn(model, xc, yc, steps=ddn_steps, batch_size=batch_size)
        norms = np.where(found.success, found.norm, np.inf)
        add("l2", "ddn", f"steps={ddn_steps}", "median_l2", np.median(norms), images=len(yc))
        add(
            "l2",
            "ddn",
            f"steps={ddn_steps}",
            "asr",
            found.success.mean(),
            intervals.wilson(found.success.sum(), len(yc)),
            len(yc),
        )
    if "l2" in threat_models:
        progress.update()
    if "sticker" in threat_models and len(yc):
        _stickers(model, xc, mask, targets, seeds, rp2_epochs, rp2_lambda, add)
    if "sticker" in threat_models:
        progress.update()
    if "physical" in threat_models and len(yc):
        _physical(model, xc, mask, targets, seeds, rp2_epochs, rp2_lambda, physical_samples, add)
    if "physical" in threat_models:
        progress.update()
    if "checks" in threat_models:
        grid = tuple(min(1.0, linf_values[0] * f) for f in check_eps_scale)
        found = strength_checks(
            model,
            x,
            y,
            eps=linf_values[0],
            eps_grid=grid,
            steps=check_steps,
            source=source,
            mask=mask,
            targets=targets,
            rp2_epochs=check_rp2_epochs,
            rp2_lambda=rp2_lambda,
            seed=seeds[0],
        )
        budget = f"eps={linf_values[0]:.6g}, steps={check_steps}, rp2_epochs={check_rp2_epochs}"
        for check, held in found["checks"].items():  # nan: not run (no source, no targets, no correct image)
            add("checks", check, budget, "check_held", float("nan") if held is None else float(held), images=len(y))
        for metric in (
            "zero_gradient_fraction",
            "unbounded_pgd_success",
            "whitebox_success",
            "transfer_success",
            "unrestricted_rp2_success",
        ):
            if metric in found:
                add(
                    "checks",
                    "rp2" if "rp2" in metric else "pgd",
                    budget,
                    metric,
                    found[metric],
                    images=len(y) if metric == "zero_gradient_fraction" else found["correct"],
                )
        for e, value in zip(found["eps_grid"], found["pgd_success"]):
            add("checks", "pgd", f"eps={e:.6g}", "pgd_success", value, images=found["correct"])
        for epochs, value in zip(found.get("rp2_epochs", ()), found.get("rp2_success", ())):
            add(
                "checks",
                "rp2",
                f"lambda={rp2_lambda:g}, epochs={epochs}",
                "rp2_success",
                value,
                images=found["correct"],
            )
        add("checks", "all", budget, "checks_passed", float(found["passed"]), images=len(y))
        progress.update()
    progress.close()
    return records


def _physical(model, x, mask, targets, seeds, epochs, lam, samples, add):
    from blurnet_tf.attacks import STATIONARY_GRID, PhysicalConditions, see

    budget = f"lambda={lam:g}, epochs={epochs}, samples={samples}"
    clean = {c.name: predict_classes(model, see(x, c).numpy()) for c in STATIONARY_GRID}
    success = []
    for seed in seeds:
        run = rp2(
            model,
            x,
            mask,
            list(targets),
            lam=lam,
            epochs=epochs,
            seed=seed,
            physical=PhysicalConditions(samples=samples),
        )
        adversarial = run.adversarial[0]  # [targets, images, ...]
        moved = np.stack(
            [
                predict_classes(model, see(adversarial.reshape(-1, *x.shape[1:]), c).numpy()).reshape(len(targets), -1)
                != clean[c.name][None]
                for c in STATIONARY_GRID
            ]
        )  # [conditions, targets, images]
        for c, by_target in zip(STATIONARY_GRID, moved):
            for target, row in zip(run.targets, by_target):
                add(
                    "physical",
                    "rp2_eot",
                    f"{budget}, condition={c.name}",
                    "asr",
                    row.mean(),
                    None,
                    row.size,
                    int(target),
                    seed,
                )
        over_grid = moved.mean(axis=0)  # [targets, images]: the share of the grid's conditions each image is moved in
        for target, row in zip(run.targets, over_grid):
            add("physical", "rp2_eot", budget, "grid_asr", row.mean(), None, row.size, int(target), seed)
        success.append(over_grid)
    iv = intervals.asr_interval(np.asarray(success, np.float64), "avg_asr")
    add("physical", "rp2_eot", budget, "avg_grid_asr", iv["mean"], [iv["lo"], iv["hi"]], len(x))


def _stickers(model, x, mask, targets, seeds, epochs, lam, add):
    budget = f"lambda={lam:g}, epochs={epochs}"
    success = []
    for seed in seeds:
        run = rp2(model, x, mask, list(targets), lam=lam, epochs=epochs, seed=seed)
        moved = run.predictions[0] != run.clean_predictions[None]  # [targets, images]: the paper's ASR
        success.append(moved)
        for target, row in zip(run.targets, moved):
            add(
                "sticker",
                "rp2",
                budget,
                "asr",
                row.mean(),
                intervals.wilson(row.sum(), row.size),
                row.size,
                int(target),
                seed,
            )
    success = np.asarray(success, np.float64)  # [seeds, targets, images]
    for statistic in ("avg_asr", "worst_asr"):
        iv = intervals.asr_interval(success, statistic)
        add("sticker", "rp2", budget, statistic, iv["mean"], [iv["lo"], iv["hi"]], success.shape[-1])
