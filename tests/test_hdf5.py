import hashlib
import json

import h5py
import numpy as np
import pytest
from PIL import Image

from genlab.data.formats import RawDataError
from genlab.data.hdf5 import pack_dataset, read_info, read_split
from genlab.data.sources import DATASETS, DatasetSource, Preprocessing, RemoteFile
from genlab.data.idx import encode_idx

SIDE = 6
CLASSES = ("a", "b", "c")
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PREP = Preprocessing(side=SIDE)


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    # Registry checksums are not checked by pack (the download stage does), so placeholders do.
    source = DatasetSource(name="tiny", files={r: RemoteFile(n, "0" * 32) for r, n in NAMES.items()}, format="idx",
                           class_names=CLASSES, channels=1, side=SIDE, licence="test data", homepage="")
    monkeypatch.setitem(DATASETS, "tiny", source)


def make_raw(tmp_path, n_train=2500, n_test=300, n_train_labels=None, shape=(SIDE, SIDE)):
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
    summary = pack_dataset("tiny", raw, out, PREP)
    assert summary == {"dataset": "tiny", "path": str(out), "splits": {"train": 2500, "test": 300},
                       "shape": [1, SIDE, SIDE], "labelled": True}

    for split in ("train", "test"):
        images, labels = read_split(out, split)
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert images.shape == (len(arrays[f"{split}_images"]), 1, SIDE, SIDE)
        np.testing.assert_array_equal(images[:, 0], arrays[f"{split}_images"])
        np.testing.assert_array_equal(labels, arrays[f"{split}_labels"])

    images, labels = read_split(out, "train", limit=10)
    assert images.shape == (10, 1, SIDE, SIDE) and labels.shape == (10,)
    np.testing.assert_array_equal(images[:, 0], arrays["train_images"][:10])
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["data.h5"]  # no temp file left


def test_layout_and_compression(tmp_path):
    raw, _ = make_raw(tmp_path)
    out = tmp_path / "data.h5"
    pack_dataset("tiny", raw, out, PREP)
    with h5py.File(out, "r") as f:
        assert set(f) == {"train", "test"}
        images = f["train/images"]
        assert images.chunks == (1024, 1, SIDE, SIDE)
        assert images.compression == "gzip" and images.compression_opts == 4 and images.shuffle
        assert f["test/images"].chunks == (300, 1, SIDE, SIDE)  # clipped to N
        assert f["train/labels"].dtype == np.int64


def test_packing_twice_is_byte_identical(tmp_path):
    raw, _ = make_raw(tmp_path)
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    pack_dataset("tiny", raw, first, PREP)
    pack_dataset("tiny", raw, second, PREP)  # timestamps: see test_pack's test, which waits a second
    assert first.read_bytes() == second.read_bytes()


def test_info(tmp_path):
    raw, _ = make_raw(tmp_path)
    out = tmp_path / "data.h5"
    pack_dataset("tiny", raw, out, PREP)
    checksums = {role: {"name": name, "algorithm": "md5", "scope": "content",
                        "checksum": hashlib.md5((raw / name).read_bytes()).hexdigest()} for role, name in NAMES.items()}
    preprocessing = {"side": SIDE, "crop": None, "resample": "bilinear", "test_fraction": None, "channels": 1,
                     "source_shapes": [[SIDE, SIDE, 1]], "cropped": False, "resized": False, "pillow": None}

    assert read_info(out) == {
        "dataset": "tiny", "class_names": list(CLASSES), "labelled": True, "channels": 1, "height": SIDE,
        "width": SIDE, "splits": {"train": 2500, "test": 300}, "preprocessing": preprocessing,
        "source_checksums": checksums, "format_version": 2, "paired": None, "input_shape": None, "task": None,
    }
    with h5py.File(out, "r") as f:
        assert f.attrs["dataset"] == "tiny" and bool(f.attrs["labelled"])
        assert json.loads(f.attrs["class_names"]) == list(CLASSES)
        assert json.loads(f.attrs["source_checksums"]) == checksums
        assert f.attrs["format_version"] == 2


def test_other_side_resizes_non_square_sources(tmp_path):
    raw, arrays = make_raw(tmp_path, n_train=5, n_test=5, shape=(SIDE, SIDE - 1))  # not square: H/W swaps show
    out = tmp_path / "data.h5"
    pack_dataset("tiny", raw, out, Preprocessing(side=4, resample="box"))
    images, _ = read_split(out, "test")
    expected = Image.fromarray(arrays["test_images"][2]).resize((4, 4), Image.Resampling.BOX)
    np.testing.assert_array_equal(images[2, 0], np.asarray(expected))
    prep = read_info(out)["preprocessing"]
    assert prep["source_shapes"] == [[SIDE, SIDE - 1, 1]] and prep["resized"] and prep["pillow"]


def test_mismatched_counts_raise(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=50, n_train_labels=49)
    out = tmp_path / "data.h5"
    with pytest.raises(RawDataError, match="train-images-idx3-ubyte: 50 images but 49 labels"):
        pack_dataset("tiny", raw, out, PREP)
    assert list(tmp_path.glob("*.h5*")) == [] and list(tmp_path.glob(".*")) == []


def test_label_out_of_range_raises(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=10, n_test=10)
    (raw / NAMES["test_labels"]).write_bytes(encode_idx(np.full(10, len(CLASSES), dtype=np.uint8)))
    with pytest.raises(RawDataError, match=r"t10k-labels-idx1-ubyte: labels outside 0\.\.2"):
        pack_dataset("tiny", raw, tmp_path / "data.h5", PREP)


def test_bad_split_or_limit(tmp_path):
    raw, _ = make_raw(tmp_path, n_train=10, n_test=10)
    out = tmp_path / "data.h5"
    pack_dataset("tiny", raw, out, PREP)
    with pytest.raises(ValueError, match=r"'valid'.*train, test"):
        read_split(out, "valid")
    with pytest.raises(ValueError, match="limit must be >= 0"):
        read_split(out, "train", limit=-1)
