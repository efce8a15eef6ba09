"""One reader per `DatasetSource.format`: the raw files in data/raw/<dataset>/ as images per split.

Each reader yields {"train": RawSplit, "test": RawSplit} from a context manager (CelebA keeps
its zip open while the images stream out). A split's images come in the order they are packed,
which never depends on the order of the members inside an archive:
- idx: the IDX files' order (MNIST's .gz files are read as they are: `read_idx` un-gzips);
- cifar10-python: data_batch_1..5, then test_batch, each in its own order;
- lfw-tgz: sorted by member name; the test split is the `test_fraction` of identities whose
  name hashes below it, so nobody is in both splits and the split never depends on the archive;
- celeba-zip: sorted by file name, split by list_eval_partition.txt (0 train, 2 test; 1 unused).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Iterator

import numpy as np

from genlab.data.archives import SafeZip, iter_members
from genlab.data.idx import read_idx
from genlab.data.preprocess import Payload, PreprocessingError
from genlab.data.sources import DatasetSource, Preprocessing, RemoteFile
from genlab.errors import GenlabError

SPLITS = ("train", "test")
_MIN_ARCHIVE_LIMIT = 256 << 20  # small archives (tests, mirrors of subsets) still get a sane total limit

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_META = "batches.meta"
_CIFAR_SIDE = 32
_LFW_MEMBER = re.compile(r"lfw/(?P<person>[^/]+)/[^/]+\.jpg")
_CELEBA_MEMBER = re.compile(r"img_align_celeba/(?P<file>[^/]+\.jpg)")
_CELEBA_SPLITS = {0: "train", 2: "test"}  # 1 (validation) is not packed
_CELEBA_PARTITIONS = (0, 1, 2)


class RawDataError(GenlabError):
    """Raw files that are missing or do not hold what their format promises."""


@dataclass(frozen=True)
class RawSplit:
    """One split as the raw files hold it, in packed order.

    `images` is a one-shot stream of (name for error messages, encoded image file or HW / HWC uint8
    array), so a reader never has to hold a whole dataset of decoded images.
    """

    count: int
    images: Iterable[tuple[str, Payload]]
    labels: np.ndarray | None  # int64 (count,); None for unlabelled datasets


RawSplits = dict[str, RawSplit]


def open_raw(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> ContextManager[RawSplits]:
    """The dataset's splits, read from `raw_dir` by the reader of `source.format`."""
    _check_split_rule(source, prep)
    return _READERS[source.format](source, Path(raw_dir), prep)


def raw_file(source: DatasetSource, raw_dir: Path, role: str) -> Path:
    """Path of the file of `role`, which the download stage must have stored."""
    path = Path(raw_dir) / source.files[role].name
    if not path.is_file():
        raise RawDataError(f"{path}: missing; run the download stage (`dvc repro download@{source.name}`)")
    return path


def source_checksums(source: DatasetSource, raw_dir: Path) -> dict[str, dict[str, str]]:
    """role -> {name, algorithm, scope, checksum} computed from the stored raw files.

    Files of scope "content" are stored decompressed, so their digest is the content digest.
    """
    checksums = {}
    for role, remote in source.files.items():
        with raw_file(source, raw_dir, role).open("rb") as f:
            digest = hashlib.file_digest(f, remote.algorithm).hexdigest()
        checksums[role] = {"name": remote.name, "algorithm": remote.algorithm, "scope": remote.scope,
                           "checksum": digest}
    return checksums


def held_out(identity: str, test_fraction: float) -> bool:
    """Whether `identity` belongs to the test split: sha1 of its name, read as a number in [0, 1)."""
    digest = hashlib.sha1(identity.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64 < test_fraction


# --------------------------------------------------------------------------- idx
@contextlib.contextmanager
def _read_idx_dataset(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    splits = {}
    for split in SPLITS:
        images_path, labels_path = (raw_file(source, raw_dir, f"{split}_{kind}") for kind in ("images", "labels"))
        images = _idx_array(images_path)
        labels = _labels(source, _idx_array(labels_path), str(labels_path))
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise RawDataError(f"{images_path}: expected uint8 images (N, H, W) or (N, H, W, C), "
                               f"got {images.dtype} {images.shape}")
        splits[split] = _array_split(images_path.name, images, labels)
    yield splits


def _idx_array(path: Path) -> np.ndarray:
    try:
        return read_idx(path)
    except (ValueError, OSError, EOFError) as exc:  # OSError, EOFError: a damaged .gz
        raise RawDataError(f"{exc}; delete {path} and re-run the download stage "
                           f"(`dvc repro download@{path.parent.name}`)") from exc


# --------------------------------------------------------------------------- cifar10-python
@contextlib.contextmanager
def _read_cifar10(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    archive = raw_file(source, raw_dir, "archive")
    batches = _cifar_pickles(archive, _total_limit(source.files["archive"], archive))
    label_names = [name.decode() for name in batches[_CIFAR_META].get(b"label_names", [])]
    if label_names != list(source.class_names):
        raise RawDataError(f"{archive}: {_CIFAR_META} names classes {label_names}, "
                           f"the registry {list(source.class_names)}")
    splits = {}
    for split, names in _CIFAR_BATCHES.items():
        parts = [_cifar_batch(archive, name, batches[name]) for name in names]
        images = np.concatenate([images for images, _ in parts])
        labels = _labels(source, np.concatenate([labels for _, labels in parts]), f"{archive}:{split}")
        splits[split] = _array_split(f"{archive.name}:{split}", images, labels)
    yield splits


def _cifar_pickles(archive: Path, max_total_bytes: int) -> dict[str, dict]:
    """The batches and meta file unpickled, by base name; a missing one is an error naming it."""
    wanted = {f"{_CIFAR_DIR}/{name}" for names in _CIFAR_BATCHES.values() for name in names}
    wanted.add(f"{_CIFAR_DIR}/{_CIFAR_META}")
    found = {}
    for name, data in iter_members(archive, max_total_bytes=max_total_bytes):
        if name in wanted:
            found[name.rsplit("/", 1)[1]] = _unpickle(archive, name, data)
    missing = sorted(wanted - {f"{_CIFAR_DIR}/{name}" for name in found})
    if missing:
        raise RawDataError(f"{archive}: members missing: {', '.join(missing)}")
    return found


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR-10 batches hold: dicts, lists, bytes, ints and numpy arrays.

    Unpickling runs whatever globals a pickle names; this one is only ever applied to members of
    the checksum-verified cifar-10-python.tar.gz, and refuses any global but the few the batches
    need, so even a tampered archive cannot run code.
    """

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 encode bytes with it

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _unpickle(archive: Path, name: str, data: bytes) -> dict:
    try:
        # encoding="bytes": the batches were pickled by Python 2; their str keys load as bytes.
        batch = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise RawDataError(f"{archive}: member {name!r} is not a CIFAR-10 pickle ({exc})") from exc
    if not isinstance(batch, dict):
        raise RawDataError(f"{archive}: member {name!r} holds a {type(batch).__name__}, not a dict")
    return batch


def _cifar_batch(archive: Path, name: str, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3, labels) of one batch; the pickled rows are CHW, 3072 bytes each."""
    data, labels = batch.get(b"data"), np.asarray(batch.get(b"labels", []))
    size = 3 * _CIFAR_SIDE * _CIFAR_SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        raise RawDataError(f"{archive}: {name}: b'data' is not a uint8 (N, {size}) array")
    if labels.shape != (len(data),):
        raise RawDataError(f"{archive}: {name}: {len(data)} images but {labels.size} labels")
    images = data.reshape(len(data), 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
    return images, labels


# --------------------------------------------------------------------------- lfw-tgz
@contextlib.contextmanager
def _read_lfw(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    archive = raw_file(source, raw_dir, "archive")
    limit = _total_limit(source.files["archive"], archive)
    files = {name: data for name, data in iter_members(archive, max_total_bytes=limit) if _LFW_MEMBER.fullmatch(name)}
    if not files:
        raise RawDataError(f"{archive}: no member matches lfw/<Person_Name>/<file>.jpg")
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name in sorted(files):
        person = _LFW_MEMBER.fullmatch(name)["person"]
        names["test" if held_out(person, prep.test_fraction) else "train"].append(name)
    _require_nonempty(archive, names, f"test_fraction {prep.test_fraction} of the identities")
    yield {split: RawSplit(len(members), _popping(files, members), None) for split, members in names.items()}


def _popping(files: dict[str, bytes], names: list[str]) -> Iterator[tuple[str, Payload]]:
    """Yield files[name] in `names` order, dropping each from `files` so memory shrinks as it goes."""
    for name in names:
        yield name, files.pop(name)


# --------------------------------------------------------------------------- celeba-zip
@contextlib.contextmanager
def _read_celeba(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    archive = raw_file(source, raw_dir, "archive")
    partition_path = raw_file(source, raw_dir, "partition")
    partition = _celeba_partition(partition_path)
    with SafeZip(archive, max_total_bytes=_total_limit(source.files["archive"], archive)) as zf:
        members = {match["file"]: name for name in zf.names if (match := _CELEBA_MEMBER.fullmatch(name))}
        _same_files(archive, set(members), partition_path, set(partition))
        names = {split: sorted(f for f, part in partition.items() if _CELEBA_SPLITS.get(part) == split)
                 for split in SPLITS}
        _require_nonempty(partition_path, names, "list_eval_partition.txt")
        yield {split: RawSplit(len(files), ((members[f], zf.read(members[f])) for f in files), None)
               for split, files in names.items()}


def _celeba_partition(path: Path) -> dict[str, int]:
    """file name -> partition of list_eval_partition.txt (`000001.jpg 0` lines)."""
    partition: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) not in _CELEBA_PARTITIONS:
            raise RawDataError(f"{path}:{number}: expected `<file>.jpg <0|1|2>`, got {line!r}")
        if fields[0] in partition:
            raise RawDataError(f"{path}:{number}: {fields[0]} listed twice")
        partition[fields[0]] = int(fields[1])
    return partition


def _same_files(archive: Path, in_archive: set[str], listing: Path, listed: set[str]) -> None:
    """Every image in the archive is listed and every listed image is in the archive, or an error naming them."""
    for where, names, other in ((archive, in_archive - listed, listing), (listing, listed - in_archive, archive)):
        if names:
            shown = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise RawDataError(f"{where}: {len(names)} image(s) not in {other.name}: {shown}")


# --------------------------------------------------------------------------- shared
_READERS: dict[str, Callable[[DatasetSource, Path, Preprocessing], ContextManager[RawSplits]]] = {
    "idx": _read_idx_dataset,
    "cifar10-python": _read_cifar10,
    "lfw-tgz": _read_lfw,
    "celeba-zip": _read_celeba,
}
_HELD_OUT_FORMATS = ("lfw-tgz",)  # formats without an official test split


def _check_split_rule(source: DatasetSource, prep: Preprocessing) -> None:
    """`test_fraction` must be set exactly for the datasets without an official test split."""
    if source.format in _HELD_OUT_FORMATS:
        if prep.test_fraction is None or not 0 < prep.test_fraction < 1:
            raise PreprocessingError(f"dataset {source.name!r} has no official test split: test_fraction "
                                     f"must be in (0, 1), got {prep.test_fraction}")
    elif prep.test_fraction is not None:
        raise PreprocessingError(f"dataset {source.name!r} has an official test split: test_fraction "
                                 f"must be null, got {prep.test_fraction}")


def _array_split(label: str, images: np.ndarray, labels: np.ndarray) -> RawSplit:
    if len(images) != len(labels):
        raise RawDataError(f"{label}: {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise RawDataError(f"{label}: no images")
    return RawSplit(len(images), ((f"{label}[{i}]", images[i]) for i in range(len(images))), labels)


def _labels(source: DatasetSource, labels: np.ndarray, label: str) -> np.ndarray:
    if labels.ndim != 1:
        raise RawDataError(f"{label}: labels must be 1-d, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= source.num_classes):
        raise RawDataError(f"{label}: labels outside 0..{source.num_classes - 1} "
                           f"(min {labels.min()}, max {labels.max()})")
    return labels.astype(np.int64)


def _require_nonempty(where: Path, names: dict[str, list[str]], rule: str) -> None:
    for split, members in names.items():
        if not members:
            raise RawDataError(f"{where}: the {split} split is empty (split by {rule})")


def _total_limit(remote: RemoteFile, path: Path) -> int:
    """Twice the archive's known size (or its size on disk), so a decompression bomb is refused early."""
    return 2 * max(remote.size or 0, path.stat().st_size, _MIN_ARCHIVE_LIMIT)
