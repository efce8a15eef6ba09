"""Packing every registered format from miniatures of its real raw files, and reading packed files back."""
import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import miniatures
from genlab.data.archives import UnsafeArchiveError
from genlab.data.formats import FORMATS, RawDataError, dataset_format, open_raw, register_format
from genlab.data.hdf5 import PackedDataError, pack_dataset, read_info, read_split
from genlab.data.idx import read_idx
from genlab.data.preprocess import PreprocessingError
from genlab.data.sources import DATASETS, Preprocessing, default_preprocessing
from genlab.data.formats import held_out
from genlab.data.hdf5 import chunk_rows
from genlab.data.preprocess import prepare

LFW_PEOPLE, LFW_IMAGES = 24, 3
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _raw_dir(root: Path, dataset: str, files: dict[str, bytes]) -> Path:
    raw = root / "raw" / dataset
    raw.mkdir(parents=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    return raw


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> dict[str, Path]:
    """One raw directory per dataset, holding miniatures of its real files."""
    root = tmp_path_factory.mktemp("raw")
    files = {
        "mnist": miniatures.mnist_files(300, 120),
        "fashion-mnist": miniatures.fashion_mnist_files(200, 50),
        "cifar10": {"cifar-10-python.tar.gz": miniatures.cifar10_archive(30)},
        "lfw": {"lfw.tgz": miniatures.lfw_archive(LFW_PEOPLE, LFW_IMAGES)},
        "celeba": miniatures.celeba_files(40),
    }
    return {dataset: _raw_dir(root, dataset, content) for dataset, content in files.items()}


@pytest.fixture(scope="module")
def packed(raw, tmp_path_factory) -> dict[str, Path]:
    """Each dataset packed once with its default preprocessing."""
    out = tmp_path_factory.mktemp("packed")
    paths = {dataset: out / f"{dataset}.h5" for dataset in raw}
    for dataset, path in paths.items():
        pack_dataset(dataset, raw[dataset], path, default_preprocessing(dataset))
    return paths


def _checksum(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@pytest.mark.parametrize("dataset, shape, counts", [
    ("mnist", (1, 28, 28), (300, 120)),
    ("fashion-mnist", (1, 28, 28), (200, 50)),
    ("cifar10", (3, 32, 32), (150, 30)),
    ("lfw", (3, 64, 64), None),
    ("celeba", (3, 64, 64), (32, 4)),
])
def test_round_trip_info(packed, raw, dataset, shape, counts):
    source = DATASETS[dataset]
    info = read_info(packed[dataset])
    assert (info["dataset"], info["class_names"], info["labelled"]) == (dataset, list(source.class_names),
                                                                        source.labelled)
    assert (info["channels"], info["height"], info["width"]) == shape and info["format_version"] == 2
    if counts is not None:
        assert info["splits"] == dict(zip(("train", "test"), counts))
    assert info["source_checksums"] == {
        role: {"name": f.name, "algorithm": f.algorithm, "scope": f.scope,
               "checksum": _checksum(raw[dataset] / f.name, f.algorithm)} for role, f in source.files.items()}
    assert info["preprocessing"]["side"] == shape[1] and info["preprocessing"]["channels"] == shape[0]
    for split, n in info["splits"].items():
        images, labels = read_split(packed[dataset], split)
        assert images.dtype == np.uint8 and images.shape == (n, *shape)
        if source.labelled:
            assert labels.dtype == np.int64 and labels.shape == (n,) and 0 <= labels.min() <= labels.max() < 10
        else:
            assert labels is None
        assert images.std() > 10  # structured pictures, not a blank fill


def test_mnist_gz_images_and_labels_exact(packed, raw):
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = read_split(packed["mnist"], split)
        np.testing.assert_array_equal(images[:, 0], read_idx(raw["mnist"] / f"{prefix}-images-idx3-ubyte.gz"))
        np.testing.assert_array_equal(labels, read_idx(raw["mnist"] / f"{prefix}-labels-idx1-ubyte.gz"))
    assert read_info(packed["mnist"])["preprocessing"]["pillow"] is None  # copied, never through PIL


def test_cifar_rows_are_chw_in_batch_order(packed, raw):
    with tarfile.open(raw["cifar10"] / "cifar-10-python.tar.gz") as tar:
        batches = [pickle.loads(tar.extractfile(f"cifar-10-batches-py/{name}").read(), encoding="bytes")
                   for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")]
    images, labels = read_split(packed["cifar10"], "train")
    np.testing.assert_array_equal(images.reshape(len(images), -1), np.concatenate([b[b"data"] for b in batches]))
    np.testing.assert_array_equal(labels, np.concatenate([b[b"labels"] for b in batches]))


def test_cifar_refuses_pickled_code(tmp_path):
    evil = pickle.dumps({b"data": shutil.rmtree}, protocol=2)  # a global outside the allow-list
    archive = miniatures.tar_archive([("cifar-10-batches-py/data_batch_1", evil)])
    raw = _raw_dir(tmp_path, "cifar10", {"cifar-10-python.tar.gz": archive})
    with pytest.raises(RawDataError, match=r"data_batch_1.*shutil\.rmtree is not allowed"):
        pack_dataset("cifar10", raw, tmp_path / "out.h5", default_preprocessing("cifar10"))


def test_lfw_crop_and_resize_match_pil(packed, raw):
    with tarfile.open(raw["lfw"] / "lfw.tgz") as tar:
        members = sorted(m.name for m in tar.getmembers() if m.isfile())
        first_train = next(m for m in members if not held_out(m.split("/")[1], 0.1))
        original = Image.open(io.BytesIO(tar.extractfile(first_train).read()))
        original.load()
    expected = original.convert("RGB").crop((80, 80, 170, 170)).resize((64, 64), Image.Resampling.BILINEAR)
    images, _ = read_split(packed["lfw"], "train", limit=1)
    np.testing.assert_array_equal(images[0], np.asarray(expected).transpose(2, 0, 1))
    prep = read_info(packed["lfw"])["preprocessing"]
    assert prep["source_shapes"] == [[250, 250, 3]] and prep["cropped"] and prep["resized"]


def test_packing_twice_is_byte_identical(raw, tmp_path):
    prep = default_preprocessing("lfw")
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    pack_dataset("lfw", raw["lfw"], first, prep)
    time.sleep(1.1)  # HDF5 timestamps have 1 s resolution: any stored time would now differ
    pack_dataset("lfw", raw["lfw"], second, prep)
    assert first.read_bytes() == second.read_bytes()


def test_lfw_split_by_identity_whatever_the_member_order(raw, tmp_path, packed):
    prep = default_preprocessing("lfw")
    with open_raw(DATASETS["lfw"], raw["lfw"], prep) as splits:
        names = {split: [name for name, _ in s.images] for split, s in splits.items()}
    people = {split: {name.split("/")[1] for name in members} for split, members in names.items()}
    assert people["train"] and people["test"] and not people["train"] & people["test"]
    assert len(people["train"]) + len(people["test"]) == LFW_PEOPLE
    assert all(held_out(person, prep.test_fraction) for person in people["test"])
    assert names["train"] == sorted(names["train"]) and names["test"] == sorted(names["test"])

    shuffled = _raw_dir(tmp_path, "lfw", {"lfw.tgz": miniatures.lfw_archive(LFW_PEOPLE, LFW_IMAGES, shuffle=True)})
    assert (shuffled / "lfw.tgz").read_bytes() != (raw["lfw"] / "lfw.tgz").read_bytes()
    pack_dataset("lfw", shuffled, tmp_path / "shuffled.h5", prep)
    for split in ("train", "test"):
        np.testing.assert_array_equal(read_split(tmp_path / "shuffled.h5", split)[0],
                                      read_split(packed["lfw"], split)[0])


def test_large_images_get_smaller_chunks(raw, tmp_path):
    prep = Preprocessing(side=250, test_fraction=0.5)
    pack_dataset("lfw", raw["lfw"], tmp_path / "full.h5", prep)
    assert chunk_rows(3 * 250 * 250, 10_000) == 89  # 16 MiB // 187500 bytes per image
    with h5py.File(tmp_path / "full.h5") as f:
        assert f["train/images"].chunks == (len(f["train/images"]), 3, 250, 250)  # fewer than 89 here
    assert read_info(tmp_path / "full.h5")["preprocessing"]["resized"] is False


def test_celeba_partition(packed, raw):
    images, _ = read_split(packed["celeba"], "test")
    with zipfile.ZipFile(raw["celeba"] / "img_align_celeba.zip") as zf:
        last = Image.open(io.BytesIO(zf.read("img_align_celeba/000040.jpg")))
        first_test = Image.open(io.BytesIO(zf.read("img_align_celeba/000037.jpg")))
    assert last.size == miniatures.CELEBA_SIZE
    expected = [np.asarray(im.crop((0, 20, 178, 198)).resize((64, 64), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
                for im in (first_test, last)]
    np.testing.assert_array_equal(images[[0, -1]], np.stack(expected))  # 37..40 are test (2); 33..36 valid


@pytest.mark.parametrize("change, message", [
    (lambda text: text.replace("000007.jpg 0\n", ""),
     r"img_align_celeba\.zip: 1 image\(s\) not in list_eval_partition\.txt: 000007\.jpg"),
    (lambda text: text + "000041.jpg 2\n",
     r"list_eval_partition\.txt: 1 image\(s\) not in img_align_celeba\.zip: 000041\.jpg"),
    (lambda text: text.replace("000003.jpg 0", "000003.jpg 7"), r"list_eval_partition\.txt:3: expected"),
    (lambda text: text + "000002.jpg 0\n", r"list_eval_partition\.txt:41: 000002\.jpg listed twice"),
])
def test_celeba_partition_mismatch_named(raw, tmp_path, change, message):
    files = {p.name: p.read_bytes() for p in raw["celeba"].iterdir()}
    files["list_eval_partition.txt"] = change(files["list_eval_partition.txt"].decode()).encode()
    raw_dir = _raw_dir(tmp_path, "celeba", files)
    with pytest.raises(RawDataError, match=message):
        pack_dataset("celeba", raw_dir, tmp_path / "out.h5", default_preprocessing("celeba"))
    assert not (tmp_path / "out.h5").exists()


def test_failures_leave_nothing(raw, tmp_path):
    out = tmp_path / "packed" / "lfw.h5"
    hostile = _raw_dir(tmp_path, "lfw", {"lfw.tgz": miniatures.hostile_tgz("symlink")})
    with pytest.raises(UnsafeArchiveError):
        pack_dataset("lfw", hostile, out, default_preprocessing("lfw"))
    too_big_crop = dataclasses.replace(default_preprocessing("lfw"), crop=251)
    with pytest.raises(PreprocessingError, match=r"lfw/\w+/\w+_0001\.jpg: 250x250 image is smaller than the 251x251"):
        pack_dataset("lfw", raw["lfw"], out, too_big_crop)
    assert not out.exists() and list(out.parent.iterdir()) == []


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("payload, message", [
    (b"\xff\xd8\xff\xe0 not really a JPEG", "cannot decode image"),
    (_png(Image.new("L", (5000, 4000))), "5000x4000 pixels exceeds the limit"),
])
def test_bad_image_named(tmp_path, payload, message):
    archive = miniatures.tar_archive([(f"lfw/{name}/{name}_0001.jpg", payload) for name in miniatures.lfw_names(40)])
    raw = _raw_dir(tmp_path, "lfw", {"lfw.tgz": archive})
    with pytest.raises(PreprocessingError, match=rf"lfw/Aaron_Eckhart/Aaron_Eckhart_0001\.jpg: {message}"):
        pack_dataset("lfw", raw, tmp_path / "out.h5", default_preprocessing("lfw"))


@pytest.mark.parametrize("dataset, test_fraction", [("lfw", None), ("lfw", 1.0), ("cifar10", 0.1)])
def test_test_fraction_only_where_no_official_split(raw, tmp_path, dataset, test_fraction):
    prep = dataclasses.replace(default_preprocessing(dataset), test_fraction=test_fraction)
    with pytest.raises(PreprocessingError, match="test_fraction"):
        pack_dataset(dataset, raw[dataset], tmp_path / "out.h5", prep)


def test_every_dataset_matches_a_registered_format():
    assert list(FORMATS) == ["idx", "cifar10-python", "lfw-tgz", "celeba-zip", "pix2pix-tgz", "cyclegan-zip",
                             "mnistm-pkl"]
    for source in DATASETS.values():
        assert dataset_format(source) is FORMATS[source.format]


@pytest.mark.parametrize("dataset, change, message", [
    ("mnist", {"format": "png-folder"}, r"dataset 'mnist': unknown format 'png-folder'; known: idx, cifar10-python, "
                                        r"lfw-tgz, celeba-zip, pix2pix-tgz, cyclegan-zip, mnistm-pkl$"),
    ("mnist", {"layout": "paired"}, r"format idx reads plain datasets, but its layout is 'paired'"),
    ("facades", {"input_half": None}, r"input_half must be one of left, right exactly for side-by-side pairs "
                                      r"\(format pix2pix-tgz\), got None"),
    ("mnist", {"input_half": "left"}, r"input_half must be one of left, right exactly"),
    ("lfw", {"test_fraction": None}, r"test_fraction must be set exactly for the formats without an official "
                                     r"test split \(lfw-tgz\), got None"),
])
def test_dataset_not_matching_its_format_is_one_clear_error(tmp_path, dataset, change, message):
    source = dataclasses.replace(DATASETS[dataset], **change)
    with pytest.raises(ValueError, match=message):
        open_raw(source, tmp_path, default_preprocessing(dataset))


def test_a_format_is_registered_once():
    twice = (r"format 'idx' is registered twice: by genlab\.data\.formats\._read_idx_dataset "
             r"and by .*test_a_format_is_registered_once\.<locals>\.reader$")
    with pytest.raises(ValueError, match=twice):
        @register_format("idx")
        def reader(source, raw_dir, prep):
            yield {}
    assert FORMATS["idx"].read.__name__ == "_read_idx_dataset"


def test_the_registry_stays_light():
    """The params check and the download stage import the dataset registry, not the readers."""
    code = ("import sys, genlab.config, genlab.data.sources, genlab.data.download; "
            "print(sorted({'numpy', 'PIL', 'genlab.data.formats'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_missing_raw_file_says_download(tmp_path):
    with pytest.raises(RawDataError, match=r"lfw\.tgz: missing; run the download stage \(`dvc repro download@lfw`\)"):
        pack_dataset("lfw", tmp_path, tmp_path / "out.h5", default_preprocessing("lfw"))


def test_damaged_idx_gz_says_download(raw, tmp_path):
    files = {p.name: p.read_bytes() for p in raw["mnist"].iterdir()}
    files["t10k-labels-idx1-ubyte.gz"] = files["t10k-labels-idx1-ubyte.gz"][:-12]
    with pytest.raises(RawDataError, match=r"t10k-labels-idx1-ubyte\.gz.*re-run the download stage"):
        pack_dataset("mnist", _raw_dir(tmp_path, "mnist", files), tmp_path / "out.h5", default_preprocessing("mnist"))


def test_prepare_converts_channels_and_filters():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    gray = prepare(rgb, Preprocessing(side=16, crop=24, resample="nearest"), channels=1)
    expected = Image.fromarray(rgb).convert("L").crop((3, 8, 27, 32)).resize((16, 16), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(gray[0], np.asarray(expected))
    smooth = prepare(rgb, Preprocessing(side=16, crop=24, resample="lanczos"), channels=1)
    assert gray.shape == smooth.shape == (1, 16, 16) and not np.array_equal(gray, smooth)
    assert prepare(rgb[:16, :16], Preprocessing(side=16), channels=3).shape == (3, 16, 16)
    with pytest.raises(PreprocessingError, match="unknown resample filter 'cubic'"):
        pack_dataset("mnist", Path("."), Path("out.h5"), Preprocessing(side=28, resample="cubic"))


@pytest.mark.parametrize("damage, message", [
    ("missing", "packed dataset missing"),
    ("not_hdf5", "unreadable packed dataset"),
    ("truncated", "unreadable packed dataset"),
    ("version", "format_version 1, expected 2"),
    ("no_test", "/test/images missing"),
    ("no_labels", "/train/labels missing"),
])
def test_damaged_packed_file_says_repack(packed, tmp_path, damage, message):
    path = tmp_path / "mnist.h5"
    if damage != "missing":
        shutil.copy(packed["mnist"], path)
    if damage == "not_hdf5":
        path.write_bytes(b"this is not HDF5" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage in ("version", "no_test", "no_labels"):
        with h5py.File(path, "a") as f:
            {"version": lambda: f.attrs.__setitem__("format_version", 1),
             "no_test": lambda: f.__delitem__("test"),
             "no_labels": lambda: f["train"].__delitem__("labels")}[damage]()
    for read in (read_info, lambda p: read_split(p, "train")):
        with pytest.raises(PackedDataError, match="re-run `dvc repro pack@mnist`") as caught:
            read(path)
        assert str(path) in str(caught.value) and message in str(caught.value)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_packs_unchanged(tmp_path):
    raw = tmp_path / "raw" / "fashion-mnist"
    raw.mkdir(parents=True)
    for remote in DATASETS["fashion-mnist"].files.values():  # stored decompressed, as the download stage does
        (raw / remote.name).write_bytes(gzip.decompress((FASHION_DIR / f"{remote.name}.gz").read_bytes()))
    out = tmp_path / "fashion-mnist.h5"
    summary = pack_dataset("fashion-mnist", raw, out, default_preprocessing("fashion-mnist"))
    assert summary["splits"] == {"train": 60000, "test": 10000} and summary["shape"] == [1, 28, 28]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = read_split(out, split)
        assert images.shape == ({"train": 60000, "test": 10000}[split], 1, 28, 28)
        np.testing.assert_array_equal(images[:, 0], read_idx(raw / f"{prefix}-images-idx3-ubyte"))
        np.testing.assert_array_equal(labels, read_idx(raw / f"{prefix}-labels-idx1-ubyte"))
    checksums = json.loads(h5py.File(out).attrs["source_checksums"])
    assert {role: c["checksum"] for role, c in checksums.items()} == {
        role: f.checksum for role, f in DATASETS["fashion-mnist"].files.items()}
