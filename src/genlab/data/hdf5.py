"""Pack a dataset's raw IDX files into one deterministic HDF5 file, and read it back.

Layout (format_version 1):
    /train/images  uint8 (N, C, H, W)   chunked, shuffle + gzip 4
    /train/labels  int64 (N,)
    /test/...      same
    root attrs: dataset, class_names (JSON), source_md5 (JSON role -> md5), format_version
The file is byte-identical across runs (no timestamps, fixed libver, no creation order)
so DVC sees an unchanged output when its inputs are unchanged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from genlab.data.idx import read_idx
from genlab.data.sources import DATASETS, DatasetSource
from genlab.io import atomic_path

FORMAT_VERSION = 1
SPLITS = ("train", "test")
_LIBVER = ("earliest", "v110")  # pinned: "latest" would change the format with the HDF5 version
_CHUNK_ROWS = 1024


def pack_idx_to_hdf5(name: str, raw_dir: Path, out_path: Path) -> None:
    """Pack `raw_dir/<file>` (decompressed IDX, as `download_dataset` stores them) into `out_path`."""
    source = _source(name)
    raw_dir = Path(raw_dir)
    arrays: dict[str, np.ndarray] = {}
    md5s: dict[str, str] = {}
    for role, remote in source.files.items():
        data = (raw_dir / remote.name).read_bytes()
        md5s[role] = hashlib.md5(data).hexdigest()
        arrays[role] = read_idx(data, name=str(raw_dir / remote.name))

    splits = {}
    for split in SPLITS:
        images = _images(source, split, arrays[f"{split}_images"])
        labels = _labels(source, split, arrays[f"{split}_labels"])
        _validate_counts(split, images, labels)
        splits[split] = images, labels

    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w", libver=_LIBVER, track_order=False) as f:
            f.attrs["dataset"] = source.name
            f.attrs["class_names"] = json.dumps(list(source.class_names))
            f.attrs["source_md5"] = json.dumps(md5s, sort_keys=True)
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            for split, (images, labels) in splits.items():
                group = f.create_group(split, track_order=False)
                n = len(labels)
                group.create_dataset("images", data=images, chunks=(min(_CHUNK_ROWS, n), *images.shape[1:]),
                                     compression="gzip", compression_opts=4, shuffle=True,
                                     track_times=False, track_order=False)
                group.create_dataset("labels", data=labels, chunks=(min(1 << 16, n),),
                                     compression="gzip", compression_opts=4, shuffle=True,
                                     track_times=False, track_order=False)


def read_split(h5_path: str | Path, split: str,
               limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, C, H, W), labels int64 (N,)) of `split`, the first `limit` only if given."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    with _open(h5_path) as f:
        if split not in f:
            raise ValueError(f"{h5_path}: split {split!r} missing; present: {', '.join(sorted(f))}")
        rows = slice(None) if limit is None else slice(0, limit)
        images = np.asarray(f[split]["images"][rows], dtype=np.uint8)
        labels = np.asarray(f[split]["labels"][rows], dtype=np.int64)
    return images, labels


def read_info(h5_path: str | Path) -> dict:
    """Dataset name, class names, image geometry and split sizes of a packed file."""
    with _open(h5_path) as f:
        _, channels, height, width = f["train"]["images"].shape
        return {
            "dataset": _str(f.attrs["dataset"]),
            "class_names": json.loads(_str(f.attrs["class_names"])),
            "channels": int(channels),
            "height": int(height),
            "width": int(width),
            "splits": {split: int(f[split]["labels"].shape[0]) for split in SPLITS if split in f},
            "source_md5": json.loads(_str(f.attrs["source_md5"])),
            "format_version": int(f.attrs["format_version"]),
        }


def _source(name: str) -> DatasetSource:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    return DATASETS[name]


def _images(source: DatasetSource, split: str, images: np.ndarray) -> np.ndarray:
    """Validate IDX images (N, H, W) or (N, H, W, C) and return them as uint8 (N, C, H, W)."""
    c, h, w = source.channels, source.height, source.width
    if images.dtype != np.uint8:
        raise ValueError(f"{split} images: expected uint8, got {images.dtype}")
    if images.ndim == 3 and c == 1 and images.shape[1:] == (h, w):
        return images.reshape(len(images), 1, h, w)
    if images.ndim == 4 and images.shape[1:] == (h, w, c):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise ValueError(f"{split} images: shape {images.shape} does not match dataset {source.name!r} "
                     f"(expected (N, {h}, {w})" + (")" if c == 1 else f" or (N, {h}, {w}, {c}))"))


def _labels(source: DatasetSource, split: str, labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 1:
        raise ValueError(f"{split} labels: expected 1-d, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= source.num_classes):
        raise ValueError(f"{split} labels: values outside 0..{source.num_classes - 1} "
                         f"(min {labels.min()}, max {labels.max()})")
    return labels.astype(np.int64)


def _validate_counts(split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError(f"{split}: no samples")


def _open(h5_path: str | Path) -> h5py.File:
    f = h5py.File(h5_path, "r")
    version = f.attrs.get("format_version")
    if version is None or int(version) != FORMAT_VERSION:
        f.close()
        raise ValueError(f"{h5_path}: format_version {version!r}, expected {FORMAT_VERSION}; re-run the pack stage")
    return f


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
