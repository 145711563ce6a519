"""Re-measure numbers stored by the full reproduction run (results/full), robustbench-style:
the committed sticker noise, applied again to the victims, must give the stored ASR and L2.

The numbers are read from results.json (flat records). results/full was written before the records
existed (its tables.json has no schema); its results.json was derived from that tables.json by
`python -m blurnet_tf.reports.flat_records results/full`, and is checked here to match it."""

import json

import numpy as np
import pytest

from conftest import ROOT

STORED = ROOT / "results" / "full"


def _committed_tables(folder, command):
    path = folder / "tables.json"
    if not path.is_file():
        pytest.skip(f"{path} not committed yet (written by {command})")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def tables():
    return _committed_tables(STORED, "./run.sh full")


@pytest.fixture(scope="module")
def stored(tables):
    """{(experiment, model, variant, attack, lambda, target, metric): value} of the first seed."""
    from blurnet_tf.reports import flat_records

    records = flat_records.read(STORED / flat_records.JSON_FILE)
    return {
        (r.experiment, r.model, r.variant, r.attack, r.lam, r.target, r.metric): r.value for r in records if r.seed == 0
    }


def test_stored_records_are_the_stored_tables(tables):
    """results.json holds exactly the records rebuilt from tables.json (old, schema-less: the
    commit it names, -dirty there, is split into commit and dirty), one per key."""
    from blurnet_tf.reports import flat_records

    header = json.loads((STORED / flat_records.JSON_FILE).read_text())
    if "schema" in tables:  # written by the records' writer: results.json is its own output
        assert header["commit"] == flat_records.stamp(tables["metadata"]["commit"])[0]
        return
    commit, dirty = flat_records.stamp(tables["metadata"]["commit"])
    assert (header["schema"], header["commit"], header["dirty"]) == (1, commit, dirty)
    records = flat_records.read(STORED / flat_records.JSON_FILE)
    assert records == flat_records.build(tables["data"], commit, dirty)
    assert len({r.key for r in records}) == len(records)
    original = tables["data"]["transfer"]["original"]["variants"]["l1_blur_5"]
    by_key = {r.key: r.value for r in records}
    assert by_key["table1_transfer", "original", "l1_blur_5", 0, "rp2", 0.002, None, "avg_asr"] == original["avg_asr"]
    assert (
        by_key["table4_pgd", "baseline", None, 0, "pgd_linf", None, None, "asr"]
        == tables["data"]["pgd"]["baseline"]["asr"]
    )


def _stickered(data_dir, victims, row):
    from blurnet_tf.data import load_mask
    from blurnet_tf.evaluation.metrics import apply_sticker

    mask = load_mask(data_dir, "rectangles")
    files = sorted(
        (STORED / "stickers" / row).glob("lambda0.002_target*.npy"), key=lambda p: int(p.stem.rsplit("target", 1)[1])
    )
    targets = [int(p.stem.rsplit("target", 1)[1]) for p in files]
    return targets, np.stack([apply_sticker(victims, mask, np.load(p)) for p in files])


def test_stored_table1_on_the_original_weights_remeasures(stored, data_dir, victims, original_model):
    from blurnet_tf.defences import insert_blur
    from blurnet_tf.evaluation import metrics

    targets, adv = _stickered(data_dir, victims, "original")
    assert len(targets) == 17
    for name, model in (
        ("none", original_model),
        ("input_blur_3", insert_blur(original_model, "input", 3)),
        ("l1_blur_5", insert_blur(original_model, "l1", 5)),
    ):
        clean = metrics.predict_classes(model, victims)
        asr = [metrics.attack_success_rate(clean, metrics.predict_classes(model, a)) for a in adv]
        cell = lambda metric, target=None: stored["table1_transfer", "original", name, "rp2", 0.002, target, metric]  # noqa: E731
        assert np.mean(asr) == pytest.approx(cell("avg_asr"), abs=1e-9), name
        assert asr[targets.index(12)] == pytest.approx(cell("asr", 12), abs=1e-9), name
        assert np.mean([metrics.l2_dissimilarity(victims, a) for a in adv]) == pytest.approx(cell("l2"), rel=1e-5)


def test_stored_pgd_on_the_original_weights_remeasures(stored, run_pgd_original):
    pgd = lambda metric: stored["table4_pgd", "original", None, "pgd_linf", None, None, metric]  # noqa: E731
    assert run_pgd_original["asr"] == pytest.approx(pgd("asr"), abs=1 / 40)
    assert run_pgd_original["l2"] == pytest.approx(pgd("l2"), rel=1e-3)


@pytest.fixture(scope="module")
def run_pgd_original(tmp_path_factory):
    from conftest import run_python

    out = tmp_path_factory.mktemp("pgd")
    run_python("-m", "blurnet_tf.cli.attack", "--model=original", "--flagfile=flags/attacks/pgd.flags", f"--out={out}")
    return json.loads((out / "results.json").read_text())["pgd"]


SEEDED = ROOT / "results" / "table2"  # every Table II row under seeds 0, 1, 2 (the table2 profile)


@pytest.fixture(scope="module")
def seeded():
    return _committed_tables(SEEDED, "./run.sh table2")


@pytest.mark.slow
def test_the_table2_run_has_three_seeds_on_every_row_and_its_intervals_and_claims_recompute(seeded):
    """The stored intervals and verdicts are what the seed statistics give from the stored records."""
    from blurnet_tf.pipeline.plan import TABLE2_ROWS
    from blurnet_tf.reports import accuracy_curve, flat_records, seed_statistics

    records = flat_records.read(SEEDED / flat_records.JSON_FILE)
    seeds_data = seed_statistics.from_records(records, seeded["seeds"]["seeds"], seeded["seeds"]["rows"])
    assert json.loads(json.dumps(seed_statistics.row_intervals(seeds_data))) == seeded["intervals"]
    recomputed = seed_statistics.claims(seeds_data) + accuracy_curve.claims(seeded["data"]["accuracy_curve"])
    assert [list(c) for c in recomputed] == [
        [c["claim"], c["verdict"], c["evidence"]] for c in seeded["claims"][: len(recomputed)]
    ]
    whitebox = seeded["intervals"]["whitebox"]
    assert set(whitebox) == {"original", *TABLE2_ROWS}
    assert {m[k]["seeds"] for m in whitebox.values() for k in ("avg_asr", "worst_asr", "l2")} == {3}
    assert {m["legit_accuracy"]["seeds"] for m in seeded["intervals"]["models"].values()} == {3}
    assert all(m["avg_asr"]["lo"] <= m["avg_asr"]["mean"] <= m["avg_asr"]["hi"] for m in whitebox.values())


def test_the_older_full_run_states_its_provenance_and_carries_no_stale_pixel_deflection():
    report = (STORED / "REPORT.md").read_text()
    assert "**Provenance (added 2026-12-05).**" in report and "blurnet_tf 0.1.0" in report
    assert "_Dropped (stale)" in report and "32 deflections" not in report
    tables = json.loads((STORED / "tables.json").read_text())
    assert tables["data"]["pixel_deflection"] is None and "provenance" in tables["metadata"]
    from blurnet_tf.reports import flat_records

    assert not [r for r in flat_records.read(STORED / flat_records.JSON_FILE) if r.experiment.startswith("pixel")]


def test_the_committed_quick_results_are_what_the_current_code_writes():
    """results/quick is the README's excerpt: it must be the output of the code as it is now. The report
    stores the digest of the code its steps ran under (files.code_digest, recorded by each step); a change to
    that code since fails here until `./run.sh` is run again from a clean tree and results/quick committed."""
    import platform

    from blurnet_tf import files

    meta = _committed_tables(ROOT / "results" / "quick", "./run.sh")["metadata"]
    written_with = ".".join(meta["versions"]["python"].split(".")[:2])
    if written_with != ".".join(platform.python_version_tuple()[:2]):  # ast.dump's form changes between them
        pytest.skip(f"results/quick was written under Python {written_with}: its code digest is that version's")
    assert meta.get("code") == files.code_digest(), (
        "the code the quick profile runs changed since results/quick was written: run ./run.sh and commit results/quick"
    )
    assert meta.get("dirty") is False  # written from a committed tree


def test_the_code_digest_ignores_prose_and_sees_code(tmp_path):
    from blurnet_tf import files

    (tmp_path / "blurnet_tf").mkdir()
    (tmp_path / "flags").mkdir()
    module, flagfile = tmp_path / "blurnet_tf" / "m.py", tmp_path / "flags" / "a.flags"
    module.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    flagfile.write_text("--epochs=3\n")
    first = files.code_digest(tmp_path)
    module.write_text('"""Other words."""\n\n\ndef f(x):  # a comment\n    """More."""\n    return x + 1\n')
    assert files.code_digest(tmp_path) == first  # docstrings, comments, blank lines
    module.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 2\n')
    assert files.code_digest(tmp_path) != first
    module.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    flagfile.write_text("--epochs=4\n")
    assert files.code_digest(tmp_path) != first
