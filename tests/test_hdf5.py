import hashlib
import json
import time

import h5py
import numpy as np
import pytest

from genlab.data import DATASETS, DatasetSource, RemoteFile, pack_idx_to_hdf5, read_info, read_split
from genlab.data.idx import encode_idx

H, W = 6, 5  # deliberately not square, so a swapped height/width is caught
CLASSES = ("a", "b", "c")
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    # md5s in the registry are not checked by pack, so placeholders do.
    source = DatasetSource(name="tiny", files={r: RemoteFile(n, "0" * 32) for r, n in NAMES.items()},
                           mirrors=(), local_dirs=(), class_names=CLASSES, channels=1, height=H, width=W)
    monkeypatch.setitem(DATASETS, "tiny", source)


def make_raw(tmp_path, n_train=2500, n_test=300, n_train_labels=None, shape=(H, W)):
    """Write a raw dir of IDX files; return it and the arrays written."""
    rng = np.random.default_rng(2)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train_labels": rng.integers(0, len(CLASSES), n_train if n_train_labels is None else n_train_labels,
                                     dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "test_labels": rng.integers(0, len(CLASSES), n_test, dtype=np.uint8),
    }
    raw = tmp_path / "raw"
    raw.mkdir()
    for role, array in arrays.items():
        (raw / NAMES[role]).write_bytes(encode_idx(array))
    return raw, arrays


def test_round_trip(tmp_path):
    raw, arrays = make_raw(tmp_path)
    out = tmp_path / "data.h5"
    pack_idx_to_hdf5("tiny", raw, out)

    for split in ("train", "test"):
        images, labels = read_split(out, split)
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert images.shape == (len(arrays[f"{split}_images"]), 1, H, W)
        np.testing.assert_array_equal(images[:, 0], arrays[f"{split}_images"])
        np.testing.assert_array_equal(labels, arrays[f"{split}_labels"])

    images, labels = read_split(out, "train", limit=10)
    assert images.shape == (10, 1, H, W) and labels.shape == (10,)
    np.testing.assert_array_equal(images[:, 0], arrays["train_images"][:10])
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["data.h5"]  # no temp file left


def test_layout_and_compression(tmp_path):
    raw, _ = make_raw(tmp_path)
    out = tmp_path / "data.h5"
    pack_idx_to_hdf5("tiny", raw, out)
    with h5py.File(out, "r") as f:
        assert set(f) == {"train", "test"}
        images = f["train/images"]
        assert images.chunks == (1024, 1, H, W)
        assert images.compression == "gzip" and images.compression_opts == 4 and images.shuffle
        assert f["test/images"].chunks == (300, 1, H, W)  # clipped to N
        assert f["train/labels"].dtype == np.int64


def test_packing_twice_is_byte_identical(tmp_path):
    raw, _ = make_raw(tmp_path)
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    pack_idx_to_hdf5("tiny", raw, first)
    time.sleep(1.1)  # HDF5 timestamps have 1 s resolution: any stored time would now differ
    pack_idx_to_hdf5("tiny", raw, second)
    assert first.read_bytes() == second.read_bytes()


def test_info(tmp_path):
    raw, _ = make_raw(tmp_path)
    out = tmp_path / "data.h5"
    pack_idx_to_hdf5("tiny", raw, out)
    md5s = {role: hashlib.md5((raw / name).read_bytes()).hexdigest() for role, name in NAMES.items()}

    info = read_info(out)
    assert info == {
        "dataset": "tiny", "class_names": list(CLASSES), "channels": 1, "height": H, "width": W,
        "splits": {"train": 2500, "test": 300}, "source_md5": md5s, "format_version": 1,
    }
    with h5py.File(out, "r") as f:
        assert f.attrs["dataset"] == "tiny"
        assert json.loads(f.attrs["class_names"]) == list(CLASSES)
        assert json.loads(f.attrs["source_md5"]) == md5s
        assert f.attrs["format_version"] == 1


def test_mismatched_counts_raise(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=50, n_train_labels=49)
    out = tmp_path / "data.h5"
    with pytest.raises(ValueError, match="train: 50 images but 49 labels"):
        pack_idx_to_hdf5("tiny", raw, out)
    assert list(tmp_path.glob("*.h5*")) == [] and list(tmp_path.glob(".*")) == []


def test_wrong_image_shape_raises(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=10, n_test=10, shape=(W, H))
    with pytest.raises(ValueError, match=r"train images: shape \(10, 5, 6\).*tiny"):
        pack_idx_to_hdf5("tiny", raw, tmp_path / "data.h5")


def test_label_out_of_range_raises(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=10, n_test=10)
    (raw / NAMES["test_labels"]).write_bytes(encode_idx(np.full(10, len(CLASSES), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"test labels: values outside 0\.\.2"):
        pack_idx_to_hdf5("tiny", raw, tmp_path / "data.h5")


def test_unknown_split_names_allowed_ones(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=10, n_test=10)
    out = tmp_path / "data.h5"
    pack_idx_to_hdf5("tiny", raw, out)
    with pytest.raises(ValueError, match=r"'valid'.*train, test"):
        read_split(out, "valid")
