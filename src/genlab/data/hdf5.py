"""Pack a dataset's raw files into one deterministic HDF5 file, and read it back.

Layout (format_version 2):
    /train/images  uint8 (N, C, H, W)   chunked by rows (<= 1024 rows, <= 16 MiB), shuffle + gzip 4
    /train/labels  int64 (N,)           labelled datasets only
    /train/inputs  uint8 (M, C', H', W') paired and two-domain files only: the inputs (domain A) of an
                   image-to-image task; paired files have M == N and inputs row i pairs with images row i
    /train/input_labels int64 (M,)      inputs' labels, where they have them (domain adaptation sources)
    /test/...      same
    root attrs: dataset, class_names (JSON, [] when unlabelled), labelled, source_checksums (JSON
    role -> {name, algorithm, scope, checksum} of the raw files), preprocessing (JSON: the settings
    and what was done), format_version; `paired` (bool) only with inputs; `task` (JSON) only in files
    derived by a task@<name> stage (genlab.data.tasks), whose `dataset` attr is the task's name
The file is byte-identical across runs (no timestamps, fixed libver, no creation order, images
written in the same blocks) so DVC sees an unchanged output when its inputs are unchanged. Images
are written block by block as they are decoded: a dataset is never held decoded in memory.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from genlab.data.formats import SPLITS, RawSplit, open_raw, source_checksums
from genlab.data.preprocess import Payload, PrepareStats, check_preprocessing, prepare_blocks
from genlab.data.sources import DatasetSource, Preprocessing, dataset_source
from genlab.errors import GenlabError
from genlab.io import atomic_path

FORMAT_VERSION = 2
_LIBVER = ("earliest", "v110")  # pinned: "latest" would change the format with the HDF5 version
_MAX_CHUNK_ROWS = 1024
_MAX_CHUNK_BYTES = 16 << 20
_LABEL_CHUNK_ROWS = 1 << 16
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True,
                "track_times": False, "track_order": False}


class PackedDataError(GenlabError):
    """A packed dataset file that is missing, damaged or of another layout: pack it again."""


def pack_dataset(name: str, raw_dir: Path, out_path: Path, prep: Preprocessing) -> dict:
    """Pack dataset `name` from `raw_dir` (as the download stage stores it) into `out_path`.

    Returns a summary: dataset, path, splits {split: n}, shape [C, H, W], labelled. The file
    appears only once complete: a failure leaves nothing at `out_path`.
    """
    source = dataset_source(name)
    check_preprocessing(prep)
    checksums = source_checksums(source, Path(raw_dir))
    stats = PrepareStats()
    counts = {}
    with open_raw(source, Path(raw_dir), prep) as splits, atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w", libver=_LIBVER, track_order=False) as f:
            for split in SPLITS:
                _check_inputs(source, splits[split], split)
                counts[split] = _write_split(f.create_group(split, track_order=False), splits[split],
                                             source, prep, stats, desc=f"pack {name}/{split}")
            if source.paired is not None:
                f.attrs["paired"] = np.bool_(source.paired)
            f.attrs["dataset"] = source.name
            f.attrs["class_names"] = json.dumps(list(source.class_names))
            f.attrs["labelled"] = np.bool_(source.labelled)
            f.attrs["source_checksums"] = json.dumps(checksums, sort_keys=True)
            f.attrs["preprocessing"] = json.dumps(stats.as_attrs(prep, source.channels), sort_keys=True)
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
    summary = {"dataset": name, "path": str(out_path), "splits": counts,
               "shape": [source.channels, prep.side, prep.side], "labelled": source.labelled}
    if source.paired is not None:
        summary["paired"] = source.paired
        summary["inputs"] = {split: splits[split].input_count for split in SPLITS}
    return summary


def chunk_rows(row_bytes: int, n: int) -> int:
    """Rows per chunk: up to 1024, fewer for large images so a chunk stays within 16 MiB."""
    return max(1, min(_MAX_CHUNK_ROWS, _MAX_CHUNK_BYTES // row_bytes, n))


def read_split(path: str | Path, split: str,
               limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 (N, C, H, W), labels int64 (N,) or None if unlabelled) of `split`, the first `limit` if given."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    rows = slice(None) if limit is None else slice(0, limit)
    with _reading(path) as f:
        group = f[split]
        images = np.asarray(group["images"][rows], dtype=np.uint8)
        labels = np.asarray(group["labels"][rows], dtype=np.int64) if "labels" in group else None
    return images, labels


def read_inputs(path: str | Path, split: str,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs uint8 (M, C', H', W'), input_labels int64 or None) of a paired or two-domain file."""
    rows = slice(None) if limit is None else slice(0, limit)
    with _reading(path) as f:
        group = f[split]
        if "inputs" not in group:
            raise PackedDataError(f"{path}: no /{split}/inputs: not a paired or two-domain file")
        inputs = np.asarray(group["inputs"][rows], dtype=np.uint8)
        labels = np.asarray(group["input_labels"][rows], dtype=np.int64) if "input_labels" in group else None
    return inputs, labels


def create_file(path: Path) -> h5py.File:
    """A new HDF5 file with the packed layout's pinned settings (no timestamps, no creation order)."""
    return h5py.File(path, "w", libver=_LIBVER, track_order=False)


def write_arrays(group: h5py.Group, arrays: dict[str, np.ndarray]) -> None:
    """Write in-memory arrays (images/inputs uint8 (N, C, H, W), labels int64 (N,)) into `group` with
    the packed layout's chunking and compression: the same arrays give the same bytes."""
    for name, array in arrays.items():
        if array.ndim == 4:
            chunks = (chunk_rows(int(np.prod(array.shape[1:])), len(array)), *array.shape[1:])
        else:
            chunks = (min(_LABEL_CHUNK_ROWS, len(array)),)
        group.create_dataset(name, data=array, chunks=chunks, **_COMPRESSION)


def read_info(path: str | Path) -> dict:
    """Dataset name, classes, image geometry, split sizes and provenance of a packed file."""
    with _reading(path) as f:
        _, channels, height, width = f["train/images"].shape
        return {
            "dataset": _str(f.attrs["dataset"]),
            "class_names": json.loads(_str(f.attrs["class_names"])),
            "labelled": bool(f.attrs["labelled"]),
            "channels": int(channels),
            "height": int(height),
            "width": int(width),
            "splits": {split: int(f[split]["images"].shape[0]) for split in SPLITS},
            "preprocessing": json.loads(_str(f.attrs["preprocessing"])),
            "source_checksums": json.loads(_str(f.attrs["source_checksums"])),
            "format_version": int(f.attrs["format_version"]),
            "paired": bool(f.attrs["paired"]) if "inputs" in f["train"] else None,
            "input_shape": list(f["train/inputs"].shape[1:]) if "inputs" in f["train"] else None,
            "task": json.loads(_str(f.attrs["task"])) if "task" in f.attrs else None,
        }


def say_whole_splits(path, wanted: dict[str, tuple[str, int | None]]) -> None:
    """One line, before any work, for each count in params (key -> (split, value)) above what the packed
    file's split holds: the stage takes the whole split (and records the N it used), not what was asked."""
    info = read_info(path)
    for key, (split, value) in wanted.items():
        size = info["splits"][split]
        if value is not None and value > size:
            print(f"note: {key}: {value} asked, but the {split} split of {info['dataset']} ({path}) holds {size} "
                  f"images: taking all {size}; set {key}: {size} to say so", file=sys.stderr)


def _check_inputs(source: DatasetSource, raw: RawSplit, split: str) -> None:
    """A reader's split has inputs exactly when the layout says so, as many as the images when paired."""
    if (raw.inputs is not None) != (source.paired is not None):
        raise PackedDataError(f"dataset {source.name!r} ({source.layout}): the {source.format} reader gave "
                              f"{'no ' if raw.inputs is None else ''}inputs for the {split} split")
    if source.paired and raw.input_count != raw.count:
        raise PackedDataError(f"dataset {source.name!r}: {raw.input_count} inputs but {raw.count} images in the "
                              f"{split} split of a paired dataset")


def _write_split(group: h5py.Group, raw: RawSplit, source: DatasetSource, prep: Preprocessing,
                 stats: PrepareStats, *, desc: str) -> int:
    # Every dataset stays open until the split is written: when HDF5 closes one changes where the
    # following objects land in the file, and plain files must keep their bytes.
    written = [_write_images(group, "images", raw.images, raw.count, source, prep, stats, desc)]
    if raw.labels is not None:
        written.append(_write_labels(group, "labels", raw.labels))
    if raw.inputs is not None:
        written.append(_write_images(group, "inputs", raw.inputs, raw.input_count, source, prep, stats,
                                     f"{desc} inputs"))
        if raw.input_labels is not None:
            written.append(_write_labels(group, "input_labels", raw.input_labels))
    return raw.count


def _write_images(group: h5py.Group, name: str, payloads: Iterable[tuple[str, Payload]], count: int,
                  source: DatasetSource, prep: Preprocessing, stats: PrepareStats, desc: str) -> h5py.Dataset:
    """Prepare `count` images block by block into the new dataset `name` (uint8 (count, C, side, side))."""
    shape = (count, source.channels, prep.side, prep.side)
    rows = chunk_rows(int(np.prod(shape[1:])), count)
    images = group.create_dataset(name, shape=shape, dtype=np.uint8, chunks=(rows, *shape[1:]), **_COMPRESSION)
    for start, block in prepare_blocks(payloads, count, prep, channels=source.channels, rows=rows,
                                       stats=stats, desc=desc):
        images[start:start + len(block)] = block
    return images


def _write_labels(group: h5py.Group, name: str, labels: np.ndarray) -> h5py.Dataset:
    return group.create_dataset(name, data=labels, chunks=(min(_LABEL_CHUNK_ROWS, len(labels)),), **_COMPRESSION)


@contextlib.contextmanager
def _reading(path: str | Path) -> Iterator[h5py.File]:
    """The open file, its layout checked; any failure to read it becomes one PackedDataError."""
    path = Path(path)
    hint = f"re-run `dvc repro pack@{path.stem}`"
    if not path.is_file():
        raise PackedDataError(f"{path}: packed dataset missing; {hint}")
    try:
        with h5py.File(path, "r") as f:
            _check_layout(f, path, hint)
            yield f
    except (OSError, KeyError, ValueError, TypeError) as exc:  # h5py's errors for damaged files and objects
        raise PackedDataError(f"{path}: unreadable packed dataset ({type(exc).__name__}: {exc}); {hint}") from exc


def _check_layout(f: h5py.File, path: Path, hint: str) -> None:
    version = f.attrs.get("format_version")
    version = None if version is None else int(version)
    if version != FORMAT_VERSION:
        raise PackedDataError(f"{path}: format_version {version}, expected {FORMAT_VERSION}; {hint}")
    labelled = bool(f.attrs.get("labelled", False))
    for split in SPLITS:
        images = f.get(f"{split}/images")
        if not isinstance(images, h5py.Dataset) or images.ndim != 4 or images.dtype != np.uint8:
            raise PackedDataError(f"{path}: /{split}/images missing or not uint8 (N, C, H, W); {hint}")
        labels = f.get(f"{split}/labels")
        if labelled and (not isinstance(labels, h5py.Dataset) or labels.shape != images.shape[:1]):
            raise PackedDataError(f"{path}: /{split}/labels missing or not one per image; {hint}")
        inputs = f.get(f"{split}/inputs")
        if inputs is None:
            continue
        if not isinstance(inputs, h5py.Dataset) or inputs.ndim != 4 or inputs.dtype != np.uint8 \
                or "paired" not in f.attrs:
            raise PackedDataError(f"{path}: /{split}/inputs not uint8 (M, C, H, W), or no `paired` attribute; {hint}")
        if bool(f.attrs["paired"]) and inputs.shape[0] != images.shape[0]:
            raise PackedDataError(f"{path}: paired file with {inputs.shape[0]} inputs but {images.shape[0]} "
                                  f"images in /{split}; {hint}")


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
