"""The numbers docs/results-blurnet.md quotes in prose about the long run and the adaptive attacks' checks,
recomputed from the committed results/longtrain (with results/table2) and results/robustness: a regenerated
result set that moves them fails here."""

import pathlib
import re

import pytest

from blurnet_tf.reports import flat_records
from blurnet_tf.reports.longtrain_report import points, table2_spread

ROOT = pathlib.Path(__file__).resolve().parents[1]
LONGTRAIN = ROOT / "results" / "longtrain"
ROWS = ("baseline", "tv_1e-4", "tik_hf")


def pct(v):
    return f"{100 * v:.1f}%"


@pytest.fixture(scope="module")
def section():
    if not (LONGTRAIN / flat_records.JSON_FILE).is_file():
        pytest.skip("results/longtrain not committed")
    text = (ROOT / "docs" / "results-blurnet.md").read_text()
    start = text.index("## The paper's training length")
    return re.sub(r"\s+", " ", text[start:text.index("\n## ", start + 5)])


def test_the_long_runs_quoted_asr_and_shares_are_the_stored_ones(section):
    records = flat_records.read(LONGTRAIN / flat_records.JSON_FILE)
    pts = {row: points(records, row) for row in ROWS}
    share = {(r.model, r.metric): r.value for r in records if r.variant == "epoch300"}
    early = {(r.model, r.metric): r.value for r in records if r.variant == "epoch10"}
    asr = [p[2] for row in ROWS for p in pts[row]]
    spread = [s[2] for row in ROWS for s in table2_spread(ROOT / "results", row)]
    quoted = [
        f"TV {pct(share[('tv_1e-4', 'penalty_gradient_share')])}, Tik_hf {pct(share[('tik_hf', 'penalty_gradient_share')])}",
        f"{pct(early[('tv_1e-4', 'penalty_gradient_share')])} and {pct(early[('tik_hf', 'penalty_gradient_share')])}",
        f"({pct(pts['tv_1e-4'][0][2])} both times)", f"Tik_hf's is {pct(pts['tik_hf'][-1][2])} ({pct(pts['tik_hf'][0][2])} at 10)",
        f"({pct(min(p[2] for p in pts['baseline']))[:-1]}-{pct(max(p[2] for p in pts['baseline']))})",
        f"between {pct(min(asr))} and {pct(max(asr))}", f"span {pct(min(spread))[:-1]}-{pct(max(spread))}",
    ]
    assert pts["tv_1e-4"][0][2] == pytest.approx(pts["tv_1e-4"][-1][2])  # "what it was at 10 epochs"
    missing = [q for q in quoted if q not in section]
    assert not missing, missing


def test_the_quoted_cost_of_2000_epochs_is_the_measured_one(section):
    records = flat_records.read(LONGTRAIN / flat_records.JSON_FILE)
    cost = [r.value for r in records if r.metric == "seconds_per_epoch"]
    assert f"{min(cost):.0f}-{max(cost):.0f} s per epoch" in section
    assert f"{min(cost) * 2000 / 3600:.0f}-{max(cost) * 2000 / 3600:.0f} h per model" in section


def test_the_quoted_whole_image_success_of_the_tv_aware_attack_is_the_stored_one():
    from blurnet_tf.reports.robustness_report import ADAPTIVE

    stored = ROOT / "results" / "robustness" / flat_records.JSON_FILE
    if not stored.is_file():
        pytest.skip("results/robustness not committed")
    whole = {(r.model, r.variant): r.value for r in flat_records.read(stored)
             if r.experiment == ADAPTIVE and r.metric == "unrestricted_rp2_success"}
    tv_rows = [v for (row, attack), v in whole.items() if row.startswith("tv_")]
    others = [v for (row, attack), v in whole.items() if "tv" not in attack and not row.startswith("tv_")]
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "results-blurnet.md").read_text())
    assert f"moves only {pct(min(tv_rows))[:-1]}-{pct(max(tv_rows))} of the predictions on the TV rows" in text
    assert f"and {pct(whole[('adv_train', 'adaptive tv')])} on the adversarially trained model" in text
    assert others and min(others) == 1.0  # "the plain RP2 and the Tik-aware attacks move 100%"
