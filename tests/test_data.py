import warnings

import cv2
import numpy as np
import pytest

from blurnet_tf.data import lisa, load_mask, load_nps_colors, load_victims
from blurnet_tf.data.images import read_mask, read_rgb
from blurnet_tf.data.mnist import load_mnist, read_idx
from blurnet_tf.errors import DataError


def test_lisa_crops_in_the_original_label_space(data_dir):
    data = lisa.load_lisa(data_dir / "lisa")
    assert len(data) == 3509 + 1148
    assert data.images.shape[1:] == (32, 32, 3) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    # folder k -> model index k + 1; folder 13 (stop) is index 14; 13 (speedLimitUrdbl) absent
    assert set(np.unique(data.labels)) == set(range(1, 18)) - {13}
    stop_names = data.names[data.labels == lisa.STOP]
    assert all(n.split("/")[1] == "13" for n in stop_names)
    assert lisa.CLASS_NAMES[lisa.STOP] == "stop" and lisa.CLASS_NAMES[lisa.SPEED_LIMIT_45] == "speedLimit45"


def test_area_resize_matches_opencv(data_dir):
    path = next((data_dir / "lisa" / "train" / "0").glob("*.png"))
    bgr = cv2.imread(str(path))
    expected = cv2.resize(bgr, (32, 32), interpolation=cv2.INTER_AREA)[..., ::-1] / 255.0
    np.testing.assert_allclose(read_rgb(path, 32), expected, atol=1e-6)


def test_track_split_holds_whole_tracks_out_and_is_deterministic(data_dir):
    data = lisa.load_lisa(data_dir / "lisa")
    train_idx, test_idx = lisa.track_split(data, 0.2, seed=0)
    assert len(train_idx) + len(test_idx) == len(data)
    assert not set(data.tracks[train_idx]) & set(data.tracks[test_idx])
    assert 0.17 <= len(test_idx) / len(data) <= 0.23
    again = lisa.track_split(data, 0.2, seed=0)
    assert np.array_equal(again[1], test_idx)
    assert not np.array_equal(lisa.track_split(data, 0.2, seed=1)[1], test_idx)
    report = lisa.split_report(data, train_idx, test_idx)
    assert all(tr > 0 and te > 0 for tr, te in report["per_class"].values())


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_keeping_a_share_of_the_training_tracks_keeps_whole_tracks_and_every_class(data_dir, fraction):
    """The fair comparator's data (issue 41): whole tracks, every class, about `fraction` of the images
    overall, the same crops for the same seed and other crops for another."""
    from blurnet_tf.data import keep_training_tracks, load_lisa_split

    train, _, _ = load_lisa_split(data_dir)
    kept = keep_training_tracks(train, fraction, seed=0)
    dropped = set(train.tracks) - set(kept.tracks)
    assert not dropped & set(kept.tracks) and dropped
    assert all(np.sum(train.tracks == t) == np.sum(kept.tracks == t) for t in set(kept.tracks))  # whole tracks
    assert set(kept.labels) == set(train.labels)
    assert 0.5 * fraction <= len(kept.labels) / len(train.labels) <= 1.6 * fraction
    assert np.array_equal(keep_training_tracks(train, fraction, seed=0).names, kept.names)
    assert not np.array_equal(keep_training_tracks(train, fraction, seed=1).names, kept.names)
    assert keep_training_tracks(train, 1.0) is train
    with pytest.raises(ValueError, match=r"fraction: expected a share in \(0, 1\], got 0"):
        keep_training_tracks(train, 0)
    for fraction, seed, name in (("0.5", 0, "fraction"), (None, 0, "fraction"), (0.5, None, "seed"), (0.5, -1, "seed")):
        with pytest.raises(ValueError, match=f"^{name}: expected"):  # None as a seed: another split each time
            keep_training_tracks(train, fraction, seed)


def test_track_of_uses_the_video_name():
    assert lisa.track_of("train/13/5_stop_1331866280.avi_image12.png") == "stop_1331866280.avi"


def test_npz_cache_round_trip(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("BLURNET_CACHE", str(tmp_path))
    first = lisa.load_lisa_folder(data_dir / "lisa" / "val")
    assert list((tmp_path / "arrays").glob("lisa-*.npz"))
    second = lisa.load_lisa_folder(data_dir / "lisa" / "val")
    assert np.array_equal(first.images, second.images) and np.array_equal(first.labels, second.labels)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)
    return path


def test_bad_lisa_inputs_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        lisa.load_lisa_folder(tmp_path / "missing")
    (tmp_path / "empty" / "3").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty/3: class folder is empty"):
        lisa.load_lisa_folder(tmp_path / "empty", cache=False)
    bad = tmp_path / "bad" / "0" / "x.png"
    bad.parent.mkdir(parents=True)
    bad.write_text("not an image")
    with pytest.raises(DataError, match=r"x.png: not a readable image"):
        lisa.load_lisa_folder(tmp_path / "bad", cache=False)
    _png(tmp_path / "gray" / "0" / "g.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"g.png: expected an RGB image with 3 channels, found 1"):
        lisa.load_lisa_folder(tmp_path / "gray", cache=False)


def test_masks_are_binary_and_checked(tmp_path, data_dir):
    for name in ("rectangles", "octagon"):
        mask = load_mask(data_dir, name)
        assert mask.shape == (32, 32, 3) and set(np.unique(mask)) == {0.0, 1.0}
    with pytest.raises(DataError, match="no set pixel"):
        read_mask(_png(tmp_path / "blank.png", np.zeros((32, 32, 3), np.uint8)))
    big = np.zeros((64, 64, 3), np.uint8)
    big[10:20, 10:30] = 255
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = read_mask(_png(tmp_path / "big.png", big))
    assert small.shape == (32, 32, 3) and small[5:10, 5:15].all() and any("resized" in str(w.message) for w in caught)


def test_victims_and_printable_colours(data_dir):
    images, names = load_victims(data_dir)
    assert images.shape == (40, 32, 32, 3) and names[0] == "1.png" and "14.png" not in names
    colours = load_nps_colors(data_dir)
    assert colours.shape == (30, 3) and colours.min() >= 0 and colours.max() <= 1


def test_official_annotation_layout(tmp_path):
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[10:30, 20:50] = (0, 0, 255)  # red box, BGR
    _png(tmp_path / "aiua120214-0" / "frame1.png", frame)
    (tmp_path / "allAnnotations.csv").write_text(
        "Filename;Annotation tag;Upper left corner X;Upper left corner Y;Lower right corner X;Lower right corner Y\n"
        "aiua120214-0/frame1.png;stop;20;10;49;29\n"
        "aiua120214-0/frame1.png;doNotEnter;0;0;10;10\n"
    )
    data = lisa.load_lisa(tmp_path)
    assert len(data) == 1 and data.labels[0] == lisa.STOP
    np.testing.assert_allclose(data.images[0][..., 0], 1.0)  # all red after BGR -> RGB
    np.testing.assert_allclose(data.images[0][..., 1:], 0.0)


def test_mnist_idx_files(data_dir, tmp_path):
    x_train, y_train, x_test, y_test = load_mnist(data_dir)
    assert len(x_train) + len(x_test) == 10000 and x_train.shape[1:] == (28, 28, 1)
    assert set(np.unique(y_test)) == set(range(10))
    assert np.bincount(np.concatenate([y_train, y_test])).tolist()[0] == 980  # official test-set count of 0s
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "bad.idx")
