"""RP2's stationary test, held out from the attack (issue 44): the stickers of finished RP2 runs on one model,
each seen under every condition of attacks.STATIONARY_GRID (distance x angle, plus light), scored against the
clean sign seen under the same condition.

    StationaryTest(model="runs/x/models/baseline/seed0", stickers=(("digital", dir), ("eot", dir))).run(out)

Per sticker, condition and target, `moved` is a bit per victim: the prediction on the stickered sign under the
condition differs from the clean sign's under it (RP2's success, read where the photograph is taken), and
`targeted` the share sent to the target. Only the victims the model classifies right in the plain photograph count
(`right`, a bit per victim), as in every other RP2 table of the fair study.
"""

from __future__ import annotations

import dataclasses

from blurnet_tf import paper, rundir


@dataclasses.dataclass(frozen=True)
class StationaryTest:
    model: str
    stickers: tuple[tuple[str, str], ...]  # (name, finished RP2 run directory)
    lam: float = paper.RP2_LAMBDA
    data_dir: str | None = None

    def run(self, out):
        import numpy as np

        from blurnet_tf.attacks import STATIONARY_GRID, see
        from blurnet_tf.data import STOP
        from blurnet_tf.evaluation.metrics import predict_classes
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting, stored_adversarials

        _, victims, mask, model = load_victim_setting(self.model, self.data_dir)
        right = predict_classes(model, victims) == STOP
        clean = {c.name: predict_classes(model, see(victims, c).numpy()) for c in STATIONARY_GRID}
        scored = {}
        for name, attack_dir in self.stickers:
            targets, adversarial, _ = stored_adversarials(attack_dir, victims, mask, self.lam)  # [T, N, ...]
            cells = {}
            for c in STATIONARY_GRID:
                seen = see(adversarial.reshape(-1, *victims.shape[1:]), c).numpy()
                pred = predict_classes(model, seen).reshape(len(targets), -1)
                cells[c.name] = {
                    "moved": ["".join("1" if m else "0" for m in p != clean[c.name]) for p in pred],
                    "targeted": [float(np.mean(p == t)) for p, t in zip(pred, targets)],
                }
            scored[name] = {"targets": [int(t) for t in targets], "grid": cells}
        return rundir.write_result(
            self,
            out,
            {
                "right": "".join("1" if r else "0" for r in right),
                "clean_right_by_condition": {k: float(np.mean(v == STOP)) for k, v in clean.items()},
                "conditions": [dataclasses.asdict(c) | {"name": c.name} for c in STATIONARY_GRID],
                "stickers": scored,
            },
        )
