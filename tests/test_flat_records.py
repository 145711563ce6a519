"""The flat result records (reports.flat_records): one record per key with every field, results.csv
holding the same rows, numbers that survive the round trip, seed statistics read from the records
equal to those read straight from the run directory, and a report from a dirty tree marked."""

import csv
import dataclasses
import json
import random
import shutil
import time

import pytest

from conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "smoke_run_v0"
SEEDED = ("baseline", "adv_train", "conv_5", "tv_1e-4")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The fixture's report, written as from a tree with uncommitted changes."""
    from blurnet_tf import files
    from blurnet_tf.pipeline.plan import PROFILES
    from blurnet_tf.reports.report_writer import write_report

    out = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(files, "git_commit", lambda: "abc1234-dirty")
        write_report(PROFILES["smoke"], FIXTURE, out, time.time(), {}, [])
    return out / "smoke"


def _records(work=FIXTURE, profile=None):
    from blurnet_tf.pipeline.plan import PROFILES
    from blurnet_tf.reports import collect, flat_records

    data = collect.collect(work, profile or PROFILES["smoke"])
    return data, flat_records.build(data, "abc1234", False)


def test_one_record_per_key_and_every_field(report):
    from blurnet_tf import paper
    from blurnet_tf.reports.flat_records import FIELDS, KEY

    stored = json.loads((report / "results.json").read_text())
    assert stored["schema"] == 1 and stored["commit"] == "abc1234" and stored["dirty"] is True
    records = stored["records"]
    keys = [tuple(r[k] for k in KEY) for r in records]
    assert len(keys) == len(set(keys))
    assert all(list(r) == list(FIELDS) for r in records)
    experiments = {r["experiment"] for r in records}
    assert {
        "models",
        "table1_transfer",
        "table2_whitebox",
        "table2_smoothing",
        "table3_lowfreq",
        "table3_adaptive",
        "table4_pgd",
        "table5_adaptive_adv_train",
        "pixel_deflection",
        "defendpp_mnist",
    } <= experiments
    # Aggregates (target null) sit beside the per-target rows they summarise, one row kind throughout.
    wb = [
        r for r in records if r["experiment"] == "table2_whitebox" and r["model"] == "baseline" and r["lambda"] == 0.002
    ]
    assert sorted(r["target"] for r in wb if r["metric"] == "asr") == [5, 12]
    avg = next(r for r in wb if r["metric"] == "avg_asr" and r["target"] is None)
    assert avg["paper"] == paper.TABLE2["baseline"]["avg_asr"] and avg["images"] == 40


def test_csv_has_one_header_and_the_same_rows(report):
    from blurnet_tf.reports import flat_records

    with open(report / "results.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert tuple(lines[0]) == flat_records.FIELDS
    assert sum(tuple(line) == flat_records.FIELDS for line in lines) == 1
    from_json = flat_records.read(report / "results.json")
    assert len(lines) - 1 == len(from_json)
    assert flat_records.read(report / "results.csv") == from_json


def test_numbers_round_trip_exactly(tmp_path):
    from blurnet_tf import rundir
    from blurnet_tf.reports import flat_records

    data, records = _records()
    flat_records.write(tmp_path, records, "abc1234", False)
    assert flat_records.read(tmp_path / "results.json") == records
    assert flat_records.read(tmp_path / "results.csv") == records
    source = rundir.StickerRecord.read(FIXTURE / "whitebox" / "conv_7" / "results.json")
    by_key = {r.key: r for r in records}
    for row in source.rows:
        for metric in ("asr", "targeted", "l2"):
            key = ("table2_whitebox", "conv_7", None, 0, "rp2", row["lambda"], row["target"], metric)
            assert by_key[key].value == row[metric]  # exactly: no rounding on the way
    assert (
        by_key["table4_pgd", "original", None, 0, "pgd_linf", None, None, "asr"].value == data["pgd"]["original"]["asr"]
    )


def _two_seed_run(tmp_path):
    """The fixture with a second seed of the SEEDED rows: copies whose per-victim success is redrawn."""
    work = tmp_path / "work"
    shutil.copytree(FIXTURE, work)
    rng = random.Random(0)

    def redraw(rows):
        for r in rows:
            r["success"] = [rng.randint(0, 1) for _ in range(40)]
            r["asr"] = sum(r["success"]) / 40
            r["l2"] *= 1 + rng.random()

    dirs = [f"{stage}/{row}" for row in SEEDED + ("original",) for stage in ("whitebox", "pgd", "models")]
    dirs += [
        "transfer/baseline",
        "transfer/original",
        "lowfreq/conv_5/dct16",
        "adaptive/tv_1e-4",
        "adaptive_adv_train/tv",
    ]
    for name in dirs:
        if not (work / name).is_dir():
            continue
        shutil.copytree(work / name, work / f"{name}-seed1")
        path = next((work / f"{name}-seed1").glob("*.json"))
        d = json.loads(path.read_text())
        if "rows" in d:
            redraw(d["rows"])
        for v in d.get("variants", {}).values():
            redraw(v["rows"])
        if "pgd" in d:
            d["pgd"]["success"] = [rng.randint(0, 1) for _ in range(40)]
            d["pgd"]["asr"] = sum(d["pgd"]["success"]) / 40
        if "legit_accuracy" in d:
            d["legit_accuracy"] = rng.random()
        path.write_text(json.dumps(d))
    return work


def _seeds_from_run_dir(work, profile):
    """The seed statistics' input read straight from the run directory's records (as the report did
    before the flat records): the reference the records must reproduce."""
    from blurnet_tf import paper, rundir

    lay, rows = rundir.Layout(work), tuple(r for r in profile.rows if r in profile.seeded_rows)

    def success(rs, lam=paper.RP2_LAMBDA):
        rs = sorted((r for r in rs if abs(r["lambda"] - lam) < 1e-12), key=lambda r: r["target"])
        return [r.get("success") or [1] * round(r["asr"] * 40) + [0] * (40 - round(r["asr"] * 40)) for r in rs]

    def sticker(stage, name, seed):
        w = rundir.StickerRecord.read(lay.results(stage, name, seed))
        return w and {
            "success": success(w.rows),
            "l2": [
                r["l2"]
                for r in sorted(w.rows, key=lambda r: r["target"])
                if abs(r["lambda"] - paper.RP2_LAMBDA) < 1e-12
            ],
        }

    out = {
        "seeds": list(profile.seeds),
        "models": {},
        "whitebox": {},
        "pgd": {},
        "lowfreq": {},
        "adaptive": {},
        "adaptive_adv_train": {},
        "transfer": {},
    }
    for seed in profile.seeds:
        for row in rows:
            if m := rundir.read_model(lay.model_dir(row, seed)):
                out["models"].setdefault(row, {})[seed] = {
                    "legit_accuracy": m.legit_accuracy,
                    "test_images": m.test_images,
                }
        for row in (rundir.ORIGINAL,) + rows:
            if w := sticker("whitebox", row, seed):
                out["whitebox"].setdefault(row, {})[seed] = w
            if p := rundir.PgdRecord.read(lay.results("pgd", row, seed)):
                n = round(p.pgd["asr"] * 40)
                out["pgd"].setdefault(row, {})[seed] = {"success": [p.pgd.get("success") or [1] * n + [0] * (40 - n)]}
        for stage, names in (
            ("lowfreq", [(r, f"{r}/dct16") for r in rows if r.startswith("conv_")]),
            ("adaptive", [(r, r) for r in rows]),
            ("adaptive_adv_train", [(g, g) for g in profile.table5_regularisers if "adv_train" in rows]),
        ):
            for key, name in names:
                if w := sticker(stage, name, seed):
                    out[stage].setdefault(key, {})[seed] = w
        for source in (s for s in (rundir.ORIGINAL, "baseline") if s in (rundir.ORIGINAL,) + rows):
            if t := rundir.ResultRecord.read_values(lay.results("transfer", source, seed)):
                out["transfer"].setdefault(source, {})[seed] = {
                    n: {"success": success(v["rows"], t["lambda"])} for n, v in t["variants"].items()
                }
    return out


@pytest.mark.parametrize("two_seeds", [False, True])
def test_seed_statistics_from_records_equal_those_from_the_run_directory(tmp_path, two_seeds):
    from blurnet_tf.pipeline.plan import PROFILES
    from blurnet_tf.reports import seed_statistics

    profile = dataclasses.replace(PROFILES["smoke"], seeded_rows=SEEDED)
    work = _two_seed_run(tmp_path) if two_seeds else FIXTURE
    data, records = _records(work, profile)
    ours = seed_statistics.from_records(records, profile.seeds, data["seeds"]["rows"])
    reference = _seeds_from_run_dir(work, profile)
    assert ours == reference
    assert {k: list(v) for k, v in ours.items() if k != "seeds"} == {
        k: list(v) for k, v in reference.items() if k != "seeds"
    }
    if two_seeds:
        assert set(ours["whitebox"]["baseline"]) == {0, 1} and set(ours["adaptive_adv_train"]["tv"]) == {0, 1}
    misses_ours, misses_ref = [], []
    assert seed_statistics.table(ours, misses_ours) == seed_statistics.table(reference, misses_ref)
    assert misses_ours == misses_ref
    assert seed_statistics.claims(ours) == seed_statistics.claims(reference)


def test_seed_statistics_put_targets_in_target_order_whatever_the_records_order():
    """Paired comparisons draw the same target index for both rows: a row whose records come in
    another order must still line its targets up, or a row against its own copy is not exactly 0."""
    from blurnet_tf import paper
    from blurnet_tf.evaluation.intervals import paired_difference
    from blurnet_tf.reports import flat_records, seed_statistics

    b = flat_records.RecordBuilder("abc", False)
    hits = {3: "1" * 30 + "0" * 10, 7: "0" * 40, 12: "1" * 10 + "0" * 30}
    for row, order in (("baseline", (3, 7, 12)), ("tv_1e-4", (12, 3, 7))):
        for t in order:
            where = dict(lam=paper.RP2_LAMBDA, target=t, images=40, attack="rp2")
            b.add("table2_whitebox", row, "asr", hits[t].count("1") / 40, 0, success=hits[t], **where)
            b.add("table2_whitebox", row, "l2", 0.1 * t, 0, **where)
    wb = seed_statistics.from_records(b.rows, [0], ["baseline", "tv_1e-4"])["whitebox"]
    for row in ("baseline", "tv_1e-4"):
        assert [sum(v) for v in wb[row][0]["success"]] == [30, 0, 10]
        assert wb[row][0]["l2"] == pytest.approx([0.3, 0.7, 1.2])
    stack = lambda row: [wb[row][0]["success"]]  # noqa: E731
    assert paired_difference(stack("tv_1e-4"), stack("baseline")) == {"mean": 0.0, "lo": 0.0, "hi": 0.0}


def test_a_record_without_its_victims_is_rebuilt_on_the_number_of_images_it_was_measured_on():
    from blurnet_tf import paper
    from blurnet_tf.reports import flat_records, seed_statistics

    b = flat_records.RecordBuilder("abc", False)
    b.add("table2_whitebox", "baseline", "asr", 0.25, 0, lam=paper.RP2_LAMBDA, target=5, images=20, attack="rp2")
    entry = seed_statistics.from_records(b.rows, [0], ["baseline"])["whitebox"]["baseline"][0]
    assert entry["success"] == [[1] * 5 + [0] * 15]  # 25% of 20 images, not of the usual 40 victims


def test_a_dirty_tree_is_marked(report):
    from blurnet_tf.reports import flat_records

    assert flat_records.stamp("abc1234-dirty") == ("abc1234", True)
    assert flat_records.stamp("abc1234") == ("abc1234", False)
    assert flat_records.stamp("unknown") == ("unknown", None)
    assert all(r.dirty is True and r.commit == "abc1234" for r in flat_records.read(report / "results.csv"))
    head = (report / "REPORT.md").read_text().splitlines()[:4]
    assert any("written from a tree with uncommitted changes" in line for line in head)
    tables = json.loads((report / "tables.json").read_text())
    assert tables["schema"] == 1 and tables["metadata"]["dirty"] is True
    # tables.json: aggregates as lists with a named lambda, claims as objects.
    agg = tables["data"]["whitebox"]["baseline"]["aggregate"]
    assert [a["lambda"] for a in agg] == [0.002, 0.02, None] and agg[-1]["selection"] == "best_lambda_per_target"
    assert all(set(c) == {"claim", "verdict", "evidence"} for c in tables["claims"])


def test_each_record_carries_the_precision_its_run_used(tmp_path):
    """The report's metadata lists the precisions of the records; runs before the flag read as float32."""
    work = tmp_path / "work"
    shutil.copytree(FIXTURE, work)
    for path in (
        work / "whitebox" / "conv_7" / "results.json",
        work / "mnist" / "models" / "mnist_defendpp" / "metrics.json",
    ):
        d = json.loads(path.read_text())
        d["flags"]["precision"] = "mixed_bfloat16"
        path.write_text(json.dumps(d))
    from blurnet_tf.reports.report_writer import _precisions

    data, records = _records(work)
    bf16 = {(r.experiment, r.model) for r in records if r.precision == "mixed_bfloat16"}
    assert bf16 == {("table2_whitebox", "conv_7"), ("defendpp_mnist", "mnist_defendpp")}
    assert _precisions(data) == {"float32", "mixed_bfloat16"}
    # Evaluations that name no precision (transfer, smoothing, Pixel Deflection) do not add float32.
    assert _precisions(
        {
            "whitebox": {"a": {"precision": "mixed_bfloat16"}},
            "smoothing": {"0.2": {"acc": 1.0}},
            "seeds": {"runs": {1: {"models": {"a": {"precision": "mixed_bfloat16"}}}}},
        }
    ) == {"mixed_bfloat16"}


def test_a_rewritten_report_does_not_make_its_tree_dirty_but_changed_code_does(tmp_path):
    import subprocess

    from blurnet_tf import files

    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "REPORT.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert not files.git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "results" / "REPORT.md").write_text("new\n")  # a report re-written from this commit
    assert not files.git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert files.git_commit(tmp_path).endswith("-dirty")
