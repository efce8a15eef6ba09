"""The image-to-image datasets (facades, edges2shoes, apple2orange, mnist-m): downloaded from a real
HTTP server on 127.0.0.1 serving miniatures of their real files at their real URL paths, then packed
into the paired / two-domain layout."""
import dataclasses
import gzip
import hashlib
import inspect
import io
import json
import pickle
import shutil
import tarfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from httpserver import FileServer
from test_download import cache  # noqa: F401 (autouse: a download cache per test, no mirror from the environment)
from PIL import Image

import miniatures
from genlab.config import parse_params
from genlab.data.archives import CorruptArchiveError
from genlab.data.download import RECORDED_SUMS, DownloadError, download_dataset
from genlab.data.formats import RawDataError
from genlab.data.hdf5 import pack_dataset, read_info, read_inputs, read_split
from genlab.data.idx import read_idx
from genlab.data.preprocess import PreprocessingError
from genlab.data.sources import DATASETS, default_preprocessing
from genlab.data.task_files import derive_task
from genlab.data.tasks import TASK_KINDS, edge_maps

SIDE = 64  # miniature half side; packed at 32 to exercise the resize of both halves
COUNTS = {
    "facades": {"train": 5, "test": 3, "val": 2},
    "edges2shoes": {"train": 6, "val": 3},
    "apple2orange": {"trainA": 4, "trainB": 6, "testA": 3, "testB": 2},
}


def miniature(dataset: str) -> dict[str, bytes]:
    """file name -> bytes of a miniature of the dataset's real files."""
    if dataset == "mnist-m":
        return miniatures.mnistm_files(40, 15)
    if dataset == "apple2orange":
        return {"apple2orange.zip": miniatures.cyclegan_archive(dataset, COUNTS[dataset], SIDE)}
    return {f"{dataset}.tar.gz": miniatures.pix2pix_archive(dataset, COUNTS[dataset], SIDE, shuffle=True)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(monkeypatch):
    """A local server answering at each registered file's own URL path; the registry points there."""
    with FileServer() as s:
        for name in ("facades", "edges2shoes", "apple2orange", "mnist-m"):
            source = DATASETS[name]
            files = {role: dataclasses.replace(f, urls=tuple(f"{s.url}{urlsplit(url).path}" for url in f.urls))
                     for role, f in source.files.items()}
            monkeypatch.setitem(DATASETS, name, dataclasses.replace(source, files=files))
        yield s


def serve(server: FileServer, dataset: str, files: dict[str, bytes]) -> None:
    for role, remote in DATASETS[dataset].files.items():
        server.files[urlsplit(remote.urls[0]).path] = files[remote.name]


def label_overrides(files: dict[str, bytes]) -> dict[str, str]:
    """MNIST-M's label files are MNIST's, whose published md5 the miniatures cannot have."""
    return {role: f"md5:{hashlib.md5(files[DATASETS['mnist-m'].files[role].name]).hexdigest()}"
            for role in ("train_labels", "test_labels")}


def fetch(dataset: str, out: Path, server: FileServer, files: dict[str, bytes]) -> dict:
    serve(server, dataset, files)
    checksums = label_overrides(files) if dataset == "mnist-m" else None
    return download_dataset(dataset, out, checksums=checksums, backoff=0)


def prep(dataset: str):
    return dataclasses.replace(default_preprocessing(dataset), side=32 if dataset != "mnist-m" else 28)


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(raw dir, packed file) of each dataset, its miniature written straight into the raw dir."""
    root = tmp_path_factory.mktemp("i2i")
    result = {}
    for dataset in ("facades", "edges2shoes", "apple2orange", "mnist-m"):
        raw = root / "raw" / dataset
        raw.mkdir(parents=True)
        for name, data in miniature(dataset).items():
            (raw / name).write_bytes(data)
        out = root / f"{dataset}.h5"
        pack_dataset(dataset, raw, out, prep(dataset))
        result[dataset] = (raw, out)
    return result


# --------------------------------------------------------------------------- download
@pytest.mark.parametrize("dataset", ["facades", "edges2shoes", "apple2orange", "mnist-m"])
def test_download_records_the_sha256_of_files_without_a_published_checksum(server, tmp_path, cache, dataset,
                                                                           capsys):
    files = miniature(dataset)
    records = fetch(dataset, tmp_path / "raw", server, files)
    unpublished = [role for role, f in DATASETS[dataset].files.items() if f.checksum is None]
    assert unpublished == ["archive"]
    archive = DATASETS[dataset].files["archive"].name
    digest = sha256(files[archive])
    assert records["archive"] == {"name": archive, "algorithm": "sha256", "scope": "file", "checksum": digest,
                                  "published": False}
    assert (tmp_path / "raw" / RECORDED_SUMS).read_text() == f"{digest}  {archive}\n"
    assert (tmp_path / "raw" / archive).read_bytes() == files[archive]
    record = json.loads((cache / "recorded" / dataset / f"{archive}.json").read_text())
    assert record["sha256"] == digest and record["origin"].endswith(urlsplit(DATASETS[dataset].files["archive"].urls[0]).path)
    assert "recorded" in capsys.readouterr().err

    summary = pack_dataset(dataset, tmp_path / "raw", tmp_path / "out.h5", prep(dataset))
    info = read_info(tmp_path / "out.h5")
    assert info["source_checksums"]["archive"] == records["archive"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*files, RECORDED_SUMS])
    assert info["paired"] == DATASETS[dataset].paired == summary.get("paired")


def test_second_download_uses_the_recorded_file_without_network(server, tmp_path):
    files = miniature("facades")
    fetch("facades", tmp_path / "a", server, files)
    server.close()
    records = download_dataset("facades", tmp_path / "b", backoff=0)
    assert (tmp_path / "b" / "facades.tar.gz").read_bytes() == files["facades.tar.gz"]
    assert records["archive"]["checksum"] == sha256(files["facades.tar.gz"])


def test_a_download_that_differs_from_the_recorded_one_is_refused(server, tmp_path, cache):
    first = miniature("facades")
    fetch("facades", tmp_path / "a", server, first)
    digest = sha256(first["facades.tar.gz"])
    (cache / f"sha256-{digest}").unlink()  # the cached copy is gone: the next run must download again
    changed = {"facades.tar.gz": miniatures.pix2pix_archive("facades", COUNTS["facades"], SIDE, seed=7)}
    record = cache / "recorded" / "facades" / "facades.tar.gz.json"
    with pytest.raises(DownloadError) as caught:
        fetch("facades", tmp_path / "b", server, changed)
    message = str(caught.value)
    assert f"sha256 {digest} recorded at its first download" in message
    assert f"expected {digest}, got {sha256(changed['facades.tar.gz'])}" in message
    assert f"deleting {record}" in message and "datasets.facades.download.checksums.archive" in message
    assert not (tmp_path / "b").exists()

    record.unlink()  # the remedy the message names
    records = fetch("facades", tmp_path / "b", server, changed)
    assert records["archive"]["checksum"] == sha256(changed["facades.tar.gz"])


def test_a_checksum_param_pins_a_file_without_a_published_one(server, tmp_path, capsys):
    files = miniature("apple2orange")
    serve(server, "apple2orange", files)
    with pytest.raises(DownloadError, match="sha256 mismatch: expected 0{64}"):
        download_dataset("apple2orange", tmp_path / "raw", checksums={"archive": "sha256:" + "0" * 64}, backoff=0)
    good = sha256(files["apple2orange.zip"])
    records = download_dataset("apple2orange", tmp_path / "raw", checksums={"archive": f"sha256:{good}"})
    assert records["archive"]["checksum"] == good and "published" not in records["archive"]
    assert "pins apple2orange.zip, which has no published checksum" in capsys.readouterr().err


@pytest.mark.parametrize("dataset, cut", [("edges2shoes", 0.6), ("apple2orange", 0.6), ("mnist-m", 0.9)])
def test_a_truncated_archive_is_one_clear_error_and_never_recorded(server, tmp_path, cache, dataset, cut):
    files = miniature(dataset)
    archive = DATASETS[dataset].files["archive"].name
    files[archive] = files[archive][:int(len(files[archive]) * cut)]  # served complete, with its own length
    with pytest.raises(DownloadError) as caught:
        fetch(dataset, tmp_path / "raw", server, files)
    assert f"{archive} (no published checksum)" in str(caught.value)
    assert "incomplete or damaged download" in str(caught.value)
    assert not (cache / "recorded" / dataset).exists() and not (tmp_path / "raw").exists()


# --------------------------------------------------------------------------- pack
def _half_colours(images: np.ndarray) -> np.ndarray:
    """Per image, whether red dominates blue (mean over pixels), as a bool array."""
    return images[:, 0].mean(axis=(1, 2)) > images[:, 2].mean(axis=(1, 2))


@pytest.mark.parametrize("dataset, inputs_are_left", [("facades", False), ("edges2shoes", True)])
def test_pix2pix_halves_land_in_their_roles_paired_row_for_row(packed, dataset, inputs_are_left):
    raw, path = packed[dataset]
    info = read_info(path)
    test_folder = "val" if dataset == "edges2shoes" else "test"
    assert info["paired"] is True and info["input_shape"] == [3, 32, 32]
    assert info["splits"] == {"train": COUNTS[dataset]["train"], "test": COUNTS[dataset][test_folder]}
    for split in ("train", "test"):
        images, labels = read_split(path, split)
        inputs, input_labels = read_inputs(path, split)
        assert labels is None and input_labels is None
        assert len(inputs) == len(images)  # paired: M == N
        assert (_half_colours(inputs) == inputs_are_left).all()  # left halves are red
        assert (_half_colours(images) != inputs_are_left).all()
        white = lambda a: a.min(axis=1) > 200  # the square both halves of a pair share
        assert (white(inputs) == white(images)).mean() > 0.95
        assert not (white(images[:-1]) == white(images[1:])).all()


def test_pix2pix_rows_follow_the_file_numbers_whatever_the_archive_order(packed, tmp_path):
    raw, path = packed["facades"]
    images, _ = read_split(path, "train")
    with gzip.open(raw / "facades.tar.gz") as f:
        with tarfile.open(fileobj=f) as tar:
            third = Image.open(io.BytesIO(tar.extractfile("facades/train/3.jpg").read()))
            third.load()
    expected = third.crop((0, 0, SIDE, SIDE)).resize((32, 32), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(images[2], np.asarray(expected).transpose(2, 0, 1))
    ordered = tmp_path / "raw" / "facades"
    ordered.mkdir(parents=True)
    (ordered / "facades.tar.gz").write_bytes(miniatures.pix2pix_archive("facades", COUNTS["facades"], SIDE))
    assert (ordered / "facades.tar.gz").read_bytes() != (raw / "facades.tar.gz").read_bytes()
    pack_dataset("facades", ordered, tmp_path / "ordered.h5", prep("facades"))
    for split in ("train", "test"):
        np.testing.assert_array_equal(read_split(tmp_path / "ordered.h5", split)[0], read_split(path, split)[0])
        np.testing.assert_array_equal(read_inputs(tmp_path / "ordered.h5", split)[0], read_inputs(path, split)[0])


def test_two_domain_file_holds_both_domains_unpaired(packed):
    _, path = packed["apple2orange"]
    info = read_info(path)
    assert info["paired"] is False and info["labelled"] is False
    assert info["splits"] == {"train": COUNTS["apple2orange"]["trainB"], "test": COUNTS["apple2orange"]["testB"]}
    for split in ("train", "test"):
        images, _ = read_split(path, split)
        inputs, _ = read_inputs(path, split)
        assert len(inputs) == COUNTS["apple2orange"][f"{split}A"] != len(images)
        # apples (A, inputs) are red discs, oranges (B, images) orange: more green in the oranges
        assert inputs[:, 1].mean() + 20 < images[:, 1].mean()


# --------------------------------------------------------------------------- tasks on these datasets
def _task(dataset: str, kind: str, packed, out: Path, **settings) -> Path:
    """Derive task `kind` of `dataset` as the task@ stage does (settings validated by params)."""
    params = parse_params({"data": {"dataset": dataset}, "datasets": {dataset: {}},
                           "tasks": {"t": {"dataset": dataset, "kind": kind, **settings}},
                           "models": {"dcgan": {"type": "dcgan"}}}, models=False)
    derive_task("t", kind, params.tasks["t"].settings, packed[dataset][1], out)
    return out


@pytest.mark.parametrize("dataset", ["facades", "apple2orange"])
def test_own_task_is_the_datasets_own_inputs_and_targets(packed, tmp_path, dataset):
    source = packed[dataset][1]
    path = _task(dataset, "own", packed, tmp_path / "own.h5")
    assert read_info(path)["paired"] is DATASETS[dataset].paired
    for split in ("train", "test"):
        for read in (read_split, read_inputs):
            for got, expected in zip(read(path, split), read(source, split)):
                assert (got is None and expected is None) or np.array_equal(got, expected)


def test_kinds_that_make_their_inputs_ignore_the_datasets_own(packed, tmp_path):
    path = _task("facades", "edges", packed, tmp_path / "edges.h5")
    images, _ = read_split(packed["facades"][1], "train")
    np.testing.assert_array_equal(read_inputs(path, "train")[0], edge_maps(images, 0.25))
    assert not np.array_equal(read_inputs(path, "train")[0], read_inputs(packed["facades"][1], "train")[0])


def test_every_kind_derives_with_one_signature():
    names = {kind: tuple(inspect.signature(spec.derive).parameters) for kind, spec in TASK_KINDS.items()}
    assert {len(p) for p in names.values()} == {6}, names
    assert all(p[:4] == ("images", "labels", "inputs", "input_labels") for p in names.values()), names


def test_own_task_of_a_dataset_without_inputs_is_refused(packed, tmp_path):
    with pytest.raises(ValueError, match="kind own needs a packed dataset with inputs"):
        derive_task("t", "own", {"paired": True}, packed["mnist-m"][1], tmp_path / "own.h5")
    assert not (tmp_path / "own.h5").exists()


def test_mnistm_images_and_labels_exact(packed):
    raw, path = packed["mnist-m"]
    arrays = pickle.loads(gzip.decompress((raw / "keras_mnistm.pkl.gz").read_bytes()))
    info = read_info(path)
    assert (info["channels"], info["height"], info["labelled"], info["paired"]) == (3, 28, True, None)
    assert info["preprocessing"]["pillow"] is None  # copied as they are
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = read_split(path, split)
        np.testing.assert_array_equal(images, arrays[split.encode()].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(labels, read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz"))


@pytest.mark.parametrize("dataset", ["facades", "apple2orange"])
def test_packing_twice_is_byte_identical(packed, tmp_path, dataset):
    raw, path = packed[dataset]
    time.sleep(1.1)  # HDF5 timestamps have 1 s resolution: any stored time would now differ
    pack_dataset(dataset, raw, tmp_path / "again.h5", prep(dataset))
    assert (tmp_path / "again.h5").read_bytes() == path.read_bytes()


def _copy_raw(packed, dataset: str, tmp_path: Path) -> Path:
    raw = tmp_path / "raw" / dataset
    shutil.copytree(packed[dataset][0], raw)
    return raw


def test_pack_refuses_a_raw_file_that_differs_from_the_recorded_sha256(packed, tmp_path):
    raw = _copy_raw(packed, "facades", tmp_path)
    (raw / RECORDED_SUMS).write_text(f"{'ab' * 32}  facades.tar.gz\n")
    with pytest.raises(RawDataError, match=r"facades\.tar\.gz: sha256 [0-9a-f]{64} is not the (ab){32} that the "
                                           r"download stage recorded in SHA256SUMS; delete .* re-run"):
        pack_dataset("facades", raw, tmp_path / "out.h5", prep("facades"))
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("dataset, name", [("facades", "facades.tar.gz"), ("apple2orange", "apple2orange.zip"),
                                           ("mnist-m", "keras_mnistm.pkl.gz")])
def test_pack_of_a_truncated_archive_says_download_again(packed, tmp_path, dataset, name):
    raw = _copy_raw(packed, dataset, tmp_path)
    (raw / name).write_bytes((raw / name).read_bytes()[:-200])
    with pytest.raises(CorruptArchiveError, match=rf"{name}.*corrupt or truncated archive.*re-run the download "
                                                  rf"stage \(`dvc repro download@{dataset}`\)"):
        pack_dataset(dataset, raw, tmp_path / "out.h5", prep(dataset))
    assert not (tmp_path / "out.h5").exists()


def test_pix2pix_image_that_is_not_two_squares_is_named(tmp_path):
    raw = tmp_path / "raw" / "facades"
    raw.mkdir(parents=True)
    square = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE)).save(square, format="JPEG")
    members = [(f"facades/{folder}/1.jpg", square.getvalue()) for folder in ("train", "test")]
    (raw / "facades.tar.gz").write_bytes(miniatures.tar_archive(members))
    with pytest.raises(PreprocessingError, match=r"facades/train/1\.jpg: 64x64 image is not a pair of squares"):
        pack_dataset("facades", raw, tmp_path / "out.h5", prep("facades"))


def test_empty_split_names_the_folder(tmp_path):
    raw = tmp_path / "raw" / "edges2shoes"
    raw.mkdir(parents=True)
    (raw / "edges2shoes.tar.gz").write_bytes(miniatures.pix2pix_archive("edges2shoes", {"train": 2, "test": 2}))
    with pytest.raises(RawDataError, match=r"the test split is empty \(split by the folders edges2shoes/train/, "
                                           r"edges2shoes/val/\)"):
        pack_dataset("edges2shoes", raw, tmp_path / "out.h5", prep("edges2shoes"))


def test_mnistm_refuses_pickled_code(packed, tmp_path):
    raw = _copy_raw(packed, "mnist-m", tmp_path)
    (raw / "keras_mnistm.pkl.gz").write_bytes(gzip.compress(pickle.dumps({b"train": shutil.rmtree}, protocol=2)))
    with pytest.raises(RawDataError, match=r"keras_mnistm\.pkl\.gz is not an MNIST-M pickle .*shutil\.rmtree is "
                                           r"not allowed"):
        pack_dataset("mnist-m", raw, tmp_path / "out.h5", prep("mnist-m"))


def test_mnistm_labels_must_match_the_images(packed, tmp_path):
    raw = _copy_raw(packed, "mnist-m", tmp_path)
    shutil.copy(raw / "t10k-labels-idx1-ubyte.gz", raw / "train-labels-idx1-ubyte.gz")
    with pytest.raises(RawDataError, match=r"train-labels-idx1-ubyte\.gz: 40 images but 15 labels"):
        pack_dataset("mnist-m", raw, tmp_path / "out.h5", prep("mnist-m"))


def test_params_accept_the_new_datasets():
    params = parse_params({"data": {"dataset": "facades"},
                           "datasets": {"facades": {"download": {}, "pack": {"side": 64}},
                                        "edges2shoes": {}, "apple2orange": {}, "mnist-m": {}},
                           "models": {"dcgan": {"type": "dcgan"}}}, models=False)
    assert params.dataset("facades").preprocessing.side == 64
    assert params.dataset("edges2shoes").preprocessing.side == 256
    assert params.dataset("mnist-m").image_shape == (3, 28, 28) and params.dataset("mnist-m").num_classes == 10
