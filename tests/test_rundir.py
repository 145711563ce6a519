"""The run-directory contract: records round-trip, old (schema-0) files still read, newer ones are
refused, and seeds sit beside each other under names that carry them."""

import json

import pytest

from blurnet_tf import rundir
from blurnet_tf.errors import DataError


def test_a_record_round_trips_with_its_schema_and_seed(tmp_path):
    record = rundir.StickerRecord(
        flags={"model": "original", "seed": 3, "noise_clip": 20.0},
        rows=[{"lambda": 0.002, "target": 12, "asr": 0.5, "targeted": 0.5, "l2": 0.2}],
        aggregate={"lambda=0.002": {"avg_asr": 0.5}},
        clean_victim_accuracy=1.0,
        seed=3,
    )
    path = record.write(tmp_path / "results.json")
    data = json.loads(path.read_text())
    assert data["schema"] == rundir.SCHEMA and data["kind"] == "rp2_stickers"
    back = rundir.StickerRecord.read(path)
    assert back == record and back.summary(0.002) == {"avg_asr": 0.5}


def test_a_record_keeps_its_own_seed_where_no_flag_holds_it(tmp_path):
    """The seed is written with the record: reading never falls back to the flags' seed (or 0) for it."""
    import dataclasses

    sticker = rundir.StickerRecord(flags={"seed": 0}, rows=[], aggregate={}, clean_victim_accuracy=1.0, seed=7)
    model = rundir.ModelRecord(legit_accuracy=0.9, test_images=10, flags={}, seed=11)
    for record in (sticker, model):
        path = record.write(tmp_path / f"{record.KIND}.json")
        assert json.loads(path.read_text())["seed"] == record.seed
        assert type(record).read(path).seed == record.seed

    @dataclasses.dataclass(frozen=True)
    class Seeded:  # an in-process experiment's settings
        seed: int = 5

    rundir.write_result(Seeded(), tmp_path, {"x": 1.0})
    assert rundir.ResultRecord.read(tmp_path / rundir.RESULTS_FILE).seed == 5


def test_schema_zero_files_read_and_newer_schemas_are_refused(tmp_path):
    old = {
        "flags": {"seed": 2, "noise_clip": 20.0},
        "rows": [],
        "aggregate": {},
        "clean_victim_accuracy": 1.0,
        "history": {},
        "versions": {},
        "wall_seconds": 1.0,
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    record = rundir.StickerRecord.read(tmp_path / "old.json")
    assert record.seed == 2  # taken from the flags it was run with
    assert record.noise_file(tmp_path, 0.002, 5) == tmp_path / "noise" / "lambda0.002_target5.npy"
    (tmp_path / "new.json").write_text(json.dumps({**old, "schema": rundir.SCHEMA + 1}))
    with pytest.raises(DataError, match="newer blurnet_tf"):
        rundir.StickerRecord.read(tmp_path / "new.json")
    assert rundir.ResultRecord.read_values(tmp_path / "old.json") == old  # a schema-0 payload is the file


def test_seeds_get_their_own_directories_and_the_first_keeps_the_bare_name(tmp_path):
    lay = rundir.Layout(tmp_path)
    assert lay.model_dir("tv_1e-4", 0) == tmp_path / "models" / "tv_1e-4"
    assert lay.model_dir("tv_1e-4", 2) == tmp_path / "models" / "tv_1e-4-seed2"
    assert lay.model("original", 2) == rundir.ORIGINAL and lay.model_inputs("original") == []
    assert lay.results("lowfreq", "conv_7/dct16", 1) == tmp_path / "lowfreq" / "conv_7" / "dct16-seed1" / "results.json"
    for name, kept in (
        ("0.2", True),
        ("baseline-seed1", True),
        ("baseline.superseded-ab12", False),
        ("x.corrupt-0", False),
        ("y.not-a-step", False),
    ):
        (tmp_path / name).mkdir()
        assert rundir.is_result_dir(tmp_path / name) is kept


def test_settings_key_is_stable_and_sees_every_field():
    a = {"lambdas": (0.002,), "targets": (1, 2), "model": "original"}
    assert rundir.settings_key(a) == rundir.settings_key(dict(reversed(list(a.items()))))
    assert rundir.settings_key(a) != rundir.settings_key({**a, "targets": (2, 1)})
