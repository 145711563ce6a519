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
    return re.sub(r"\s+", " ", text[start : text.index("\n## ", start + 5)])


def test_the_long_runs_quoted_asr_and_shares_are_the_stored_ones(section):
    records = flat_records.read(LONGTRAIN / flat_records.JSON_FILE)
    pts = {row: points(records, row) for row in ROWS}
    share = {(r.model, r.metric): r.value for r in records if r.variant == "epoch300"}
    early = {(r.model, r.metric): r.value for r in records if r.variant == "epoch10"}
    asr = [p[2] for row in ROWS for p in pts[row]]
    spread = [s[2] for row in ROWS for s in table2_spread(ROOT / "results", row)]
    quoted = [
        f"TV {pct(share[('tv_1e-4', 'penalty_gradient_share')])}, "
        f"Tik_hf {pct(share[('tik_hf', 'penalty_gradient_share')])}",
        f"{pct(early[('tv_1e-4', 'penalty_gradient_share')])} and {pct(early[('tik_hf', 'penalty_gradient_share')])}",
        f"({pct(pts['tv_1e-4'][0][2])} both times)",
        f"Tik_hf's is {pct(pts['tik_hf'][-1][2])} ({pct(pts['tik_hf'][0][2])} at 10)",
        f"({pct(min(p[2] for p in pts['baseline']))[:-1]}-{pct(max(p[2] for p in pts['baseline']))})",
        f"between {pct(min(asr))} and {pct(max(asr))}",
        f"span {pct(min(spread))[:-1]}-{pct(max(spread))}",
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
    whole = {
        (r.model, r.variant): r.value
        for r in flat_records.read(stored)
        if r.experiment == ADAPTIVE and r.metric == "unrestricted_rp2_success"
    }
    tv_rows = [v for (row, attack), v in whole.items() if row.startswith("tv_")]
    others = [v for (row, attack), v in whole.items() if "tv" not in attack and not row.startswith("tv_")]
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "results-blurnet.md").read_text())
    assert f"moves only {pct(min(tv_rows))[:-1]}-{pct(max(tv_rows))} of the predictions on the TV rows" in text
    assert f"and {pct(whole[('adv_train', 'adaptive tv')])} on the adversarially trained model" in text
    assert others and min(others) == 1.0  # "the plain RP2 and the Tik-aware attacks move 100%"


# Measurements the docs quote that no committed result set holds: each region says where it was measured.
UNCHECKED = re.compile(r"<!-- unchecked: ([^>]+?) -->(.*?)<!-- /unchecked -->", re.S)
VERSION = re.compile(r"\b(?:TensorFlow|TF|Keras|ART|Toolbox|cleverhans|Ray|Python|build|version)\s+\d+\.\d+(?:\.\d+)?")


def _stored_numbers():
    """Every decimal of the committed result sets (as written, and as a percentage / minutes / hours at
    the precisions the docs use) and the papers' numbers (paper.py)."""
    found = set()
    texts = [p.read_text() for p in sorted((ROOT / "results").glob("*/*")) if p.suffix in (".md", ".json", ".csv")]
    for text in texts + [(ROOT / "blurnet_tf" / "paper.py").read_text()]:
        for number in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text):
            v = float(number)
            found |= {
                number,
                f"{v:.1f}",
                f"{v:.2f}",
                f"{v:.3f}",
                f"{v:.4f}",
                f"{100 * v:.1f}",
                f"{100 * v:.2f}",
                f"{v / 60:.1f}",
                f"{v / 3600:.1f}",
            }
    return found


def prose(text):
    """The text a reader reads as prose: generated tables, code and labelled measurements left out."""
    text = re.sub(r"<!-- results:([\w-]+) -->.*?<!-- /results:\1 -->", "", text, flags=re.S)
    text = UNCHECKED.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return VERSION.sub("", re.sub(r"`[^`]*`", "", text))


def test_every_decimal_the_docs_quote_is_in_the_committed_results_or_labelled_with_its_source():
    from blurnet_tf.reports.readme_sync import documents

    stored, missing = _stored_numbers(), []
    for path in documents():
        text = path.read_text()
        assert all(source.strip() for source, _ in UNCHECKED.findall(text)), (
            f"{path.name}: an unchecked region names no source"
        )
        for m in re.finditer(r"(?<![\w.])\d+\.\d+(?![\w.]*\d\.)", prose(text)):
            if m[0] not in stored:
                missing.append(f"{path.name}: {m[0]}")
    assert not missing, missing
