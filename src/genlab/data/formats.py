"""The dataset formats: one reader per `DatasetSource.format`, registered with `@register_format`.

A reader turns the raw files in data/raw/<dataset>/ into images per split: it is a generator of
(source, raw_dir, prep) that yields {"train": RawSplit, "test": RawSplit} once, run as a context
manager (CelebA keeps its zip open while the images stream out). Its registration is the one place
a format is declared: its name, and what every dataset of the format declares to match it (layout,
`input_half`, `test_fraction`); `FORMATS` is the registry. A split's images come in the order they
are packed, which never depends on the order of the members inside an archive; each reader's
docstring says which order that is. Splits come from the archive's folders named by the registry
(`DatasetSource.folder`).
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

from genlab.data.archives import SafeZip, iter_members, read_compressed
from genlab.data.idx import read_idx
from genlab.data.preprocess import Half, Payload, PreprocessingError
from genlab.data.sources import DATASETS, HALVES, LAYOUTS, RECORDED_SUMS, DatasetSource, Preprocessing, RemoteFile
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
_IMAGE_MEMBER = re.compile(r"(?P<root>[^/]+)/(?P<folder>[^/]+)/(?P<file>[^/]+\.(?:jpe?g|png))", re.IGNORECASE)
_CYCLEGAN_DOMAINS = {"inputs": "A", "images": "B"}
_MNISTM_SHAPE = (28, 28, 3)


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
    inputs: Iterable[tuple[str, Payload]] | None = None  # paired / two-domain datasets: domain A, packed as `inputs`
    input_count: int = 0
    input_labels: np.ndarray | None = None


RawSplits = dict[str, RawSplit]
Reader = Callable[[DatasetSource, Path, Preprocessing], ContextManager[RawSplits]]


@dataclass(frozen=True)
class Format:
    """A registered format: its reader, and what each dataset of the format must declare to match it."""

    name: str
    read: Reader
    layout: str     # what the reader yields (one of LAYOUTS), so the datasets' `layout`
    halves: bool    # side-by-side pairs: the datasets name the half packed as `inputs` (`input_half`)
    held_out: bool  # no official test split: the datasets hold out `test_fraction` of the identities


FORMATS: dict[str, Format] = {}  # name -> Format, in registration order: the readers below


def register_format(name: str, *, layout: str = "plain", halves: bool = False,
                    held_out: bool = False) -> Callable[[Callable[..., Iterator[RawSplits]]], Reader]:
    """Register the decorated generator as the reader of format `name`, run as a context manager.

    `layout`, `halves` and `held_out` are what the format asks of its datasets (see `Format`); a name
    registered twice, or an unknown layout, is a ValueError.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"format {name!r}: unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")

    def decorator(read: Callable[..., Iterator[RawSplits]]) -> Reader:
        if name in FORMATS:
            raise ValueError(f"format {name!r} is registered twice: by {_qualified(FORMATS[name].read)} "
                             f"and by {_qualified(read)}")
        reader = contextlib.contextmanager(read)
        FORMATS[name] = Format(name, reader, layout, halves, held_out)
        return reader
    return decorator


def _qualified(function: Callable) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def dataset_format(source: DatasetSource) -> Format:
    """The registered format of `source`; a ValueError names what the dataset declares that does not match it."""
    fmt = FORMATS.get(source.format)
    if fmt is None:
        raise ValueError(f"dataset {source.name!r}: unknown format {source.format!r}; known: {', '.join(FORMATS)}")
    if source.layout != fmt.layout:
        raise ValueError(f"dataset {source.name!r}: format {fmt.name} reads {fmt.layout} datasets, "
                         f"but its layout is {source.layout!r}")
    if (source.input_half is not None) != fmt.halves or source.input_half not in (None, *HALVES):
        raise ValueError(f"dataset {source.name!r}: input_half must be one of {', '.join(HALVES)} exactly "
                         f"for side-by-side pairs (format {_names('halves')}), got {source.input_half!r}")
    if (source.test_fraction is not None) != fmt.held_out:
        raise ValueError(f"dataset {source.name!r}: test_fraction must be set exactly for the formats "
                         f"without an official test split ({_names('held_out')}), got {source.test_fraction}")
    return fmt


def _names(flag: str) -> str:
    """The formats whose `flag` (halves, held_out) is set."""
    return ", ".join(fmt.name for fmt in FORMATS.values() if getattr(fmt, flag))


def open_raw(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> ContextManager[RawSplits]:
    """The dataset's splits, read from `raw_dir` by the reader of `source.format`."""
    fmt = dataset_format(source)
    _check_split_rule(source, fmt, prep)
    return fmt.read(source, Path(raw_dir), prep)


def raw_file(source: DatasetSource, raw_dir: Path, role: str) -> Path:
    """Path of the file of `role`, which the download stage must have stored."""
    path = Path(raw_dir) / source.files[role].name
    if not path.is_file():
        raise RawDataError(f"{path}: missing; run the download stage (`dvc repro download@{source.name}`)")
    return path


def source_checksums(source: DatasetSource, raw_dir: Path) -> dict[str, dict]:
    """role -> {name, algorithm, scope, checksum} computed from the stored raw files.

    Files of scope "content" are stored decompressed, so their digest is the content digest. Files
    without a published checksum also get `"published": false`, and their sha256 must be the one
    the download stage recorded in SHA256SUMS, where it did.
    """
    recorded = _recorded_sums(Path(raw_dir)) if not all(f.published for f in source.files.values()) else {}
    checksums = {}
    for role, remote in source.files.items():
        path = raw_file(source, raw_dir, role)
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, remote.algorithm).hexdigest()
        checksums[role] = {"name": remote.name, "algorithm": remote.algorithm, "scope": remote.scope,
                           "checksum": digest}
        if not remote.published:
            checksums[role]["published"] = False
            if recorded.get(remote.name, digest) != digest:
                raise RawDataError(f"{path}: sha256 {digest} is not the {recorded[remote.name]} that the download "
                                   f"stage recorded in {RECORDED_SUMS}; delete {path} and re-run the download "
                                   f"stage (`dvc repro download@{source.name}`)")
    return checksums


def _recorded_sums(raw_dir: Path) -> dict[str, str]:
    """name -> sha256 of the download stage's SHA256SUMS (`<hex>  <name>` lines); {} without one."""
    path = raw_dir / RECORDED_SUMS
    if not path.is_file():
        return {}
    sums = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if match is None:
            raise RawDataError(f"{path}:{number}: expected `<sha256>  <file name>`, got {line!r}; "
                               f"re-run the download stage")
        sums[match[2]] = match[1]
    return sums


def held_out(identity: str, test_fraction: float) -> bool:
    """Whether `identity` belongs to the test split: sha1 of its name, read as a number in [0, 1)."""
    digest = hashlib.sha1(identity.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64 < test_fraction


# --------------------------------------------------------------------------- idx
@register_format("idx")
def _read_idx_dataset(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """Images and labels in the IDX files' order (MNIST's .gz files are read as they are: `read_idx` un-gzips)."""
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
@register_format("cifar10-python")
def _read_cifar10(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """data_batch_1..5, then test_batch, each in its own order."""
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
            found[name.rsplit("/", 1)[1]] = _unpickle(f"{archive}: member {name!r}", data, "a CIFAR-10 pickle")
    missing = sorted(wanted - {f"{_CIFAR_DIR}/{name}" for name in found})
    if missing:
        raise RawDataError(f"{archive}: members missing: {', '.join(missing)}")
    return found


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what the dataset pickles hold: dicts, lists, bytes, ints and numpy arrays.

    Unpickling runs whatever globals a pickle names; this one refuses any global but the few that
    the CIFAR-10 batches and keras_mnistm.pkl need, so even a tampered file (keras_mnistm.pkl.gz
    has no published checksum) cannot run code.
    """

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 encode bytes with it

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset pickle")
        return super().find_class(module, name)


def _unpickle(where: str, data: bytes, what: str) -> dict:
    """The dict pickled in `data`; `where` names the file (and member) in errors, `what` its kind."""
    try:
        # encoding="bytes": the files were pickled by Python 2; their str keys load as bytes.
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise RawDataError(f"{where} is not {what} ({exc})") from exc
    if not isinstance(batch, dict):
        raise RawDataError(f"{where} holds a {type(batch).__name__}, not a dict")
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
@register_format("lfw-tgz", held_out=True)
def _read_lfw(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """Sorted by member name; the test split is the `test_fraction` of identities whose name hashes below
    it, so nobody is in both splits and the split never depends on the archive."""
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
@register_format("celeba-zip")
def _read_celeba(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """Sorted by file name, split by list_eval_partition.txt (0 train, 2 test; 1 unused)."""
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


# --------------------------------------------------------------------------- pix2pix-tgz
@register_format("pix2pix-tgz", layout="paired", halves=True)
def _read_pix2pix(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """`<dataset>/<folder>/<n>.jpg` pairs side by side (A | B), in natural order of the file names
    (1, 2, ..., 10); `images` and `inputs` are the two halves of the same files, as the registry's
    `input_half` says, so row i of one pairs with row i of the other."""
    archive = raw_file(source, raw_dir, "archive")
    folders = {split: source.folder(split) for split in SPLITS}
    files: dict[str, bytes] = {}
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name, data in iter_members(archive, max_total_bytes=_total_limit(source.files["archive"], archive)):
        split = _member_split(source, name, folders)
        if split is not None:
            files[name] = data
            names[split].append(name)
    _require_nonempty(archive, _sorted_names(names), _folders_rule(source, folders))
    inputs = HALVES.index(source.input_half)
    yield {split: RawSplit(len(members), ((name, Half(files[name], 1 - inputs)) for name in members), None,
                           inputs=((name, Half(files[name], inputs)) for name in members),
                           input_count=len(members))
           for split, members in names.items()}


# --------------------------------------------------------------------------- cyclegan-zip
@register_format("cyclegan-zip", layout="two-domain")
def _read_cyclegan(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """`<dataset>/<folder>A/` (inputs) and `<dataset>/<folder>B/` (images), unpaired, each in natural
    order of the file names."""
    archive = raw_file(source, raw_dir, "archive")
    folders = {(split, role): f"{source.folder(split)}{domain}"
               for split in SPLITS for role, domain in _CYCLEGAN_DOMAINS.items()}
    with SafeZip(archive, max_total_bytes=_total_limit(source.files["archive"], archive)) as zf:
        names: dict[tuple[str, str], list[str]] = {key: [] for key in folders}
        for name in zf.names:
            key = _member_split(source, name, folders)
            if key is not None:
                names[key].append(name)
        _require_nonempty(archive, _sorted_names(names), _folders_rule(source, folders))

        def read(key: tuple[str, str]) -> Iterator[tuple[str, Payload]]:
            return ((name, zf.read(name)) for name in names[key])

        yield {split: RawSplit(len(names[split, "images"]), read((split, "images")), None,
                               inputs=read((split, "inputs")), input_count=len(names[split, "inputs"]))
               for split in SPLITS}


def _member_split(source: DatasetSource, name: str, folders: dict) -> object | None:
    """The key of `folders` whose folder holds image member `name` (`<dataset>/<folder>/<file>`), or None."""
    match = _IMAGE_MEMBER.fullmatch(name)
    if match is None or match["root"] != source.name:
        return None
    return next((key for key, folder in folders.items() if folder == match["folder"]), None)


def _sorted_names(names: dict) -> dict:
    """Each list of member names in natural order (`2.jpg` before `10.jpg`), whatever the archive's order."""
    for members in names.values():
        members.sort(key=lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)])
    return names


def _folders_rule(source: DatasetSource, folders: dict) -> str:
    return "the folders " + ", ".join(f"{source.name}/{folder}/" for folder in folders.values())


# --------------------------------------------------------------------------- mnistm-pkl
@register_format("mnistm-pkl")
def _read_mnistm(source: DatasetSource, raw_dir: Path, prep: Preprocessing) -> Iterator[RawSplits]:
    """keras_mnistm.pkl.gz's `train` and `test` arrays in their order (MNIST's), labelled by MNIST's
    label files row for row."""
    archive = raw_file(source, raw_dir, "archive")
    arrays = _unpickle(str(archive), read_compressed(archive, max_bytes=_total_limit(source.files["archive"], archive)),
                       "an MNIST-M pickle (a dict of uint8 image arrays)")
    splits = {}
    for split in SPLITS:
        images = arrays.get(split.encode(), arrays.get(split))
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != _MNISTM_SHAPE:
            got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise RawDataError(f"{archive}: {split!r} is not a uint8 (N, 28, 28, 3) array (got {got}); delete it "
                               f"and re-run the download stage (`dvc repro download@{source.name}`)")
        labels_path = raw_file(source, raw_dir, f"{split}_labels")
        labels = _labels(source, _idx_array(labels_path), str(labels_path))
        splits[split] = _array_split(f"{archive.name}:{split} with {labels_path.name}", images, labels)
    yield splits


# --------------------------------------------------------------------------- shared
def _check_split_rule(source: DatasetSource, fmt: Format, prep: Preprocessing) -> None:
    """`test_fraction` must be set exactly for the datasets without an official test split."""
    if fmt.held_out:
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


def _require_nonempty(where: Path, names: dict, rule: str) -> None:
    for split, members in names.items():
        if not members:
            which = split if isinstance(split, str) else " ".join(split)
            raise RawDataError(f"{where}: the {which} split is empty (split by {rule})")


def _total_limit(remote: RemoteFile, path: Path) -> int:
    """Twice the archive's known size (or its size on disk), so a decompression bomb is refused early."""
    return 2 * max(remote.size or 0, path.stat().st_size, _MIN_ARCHIVE_LIMIT)


for _source in DATASETS.values():  # registered before the readers were: checked now that they are
    dataset_format(_source)
