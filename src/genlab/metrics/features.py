"""Batched feature extraction and byte-stable HDF5 feature files with their protocol."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np
import torch
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor
from tqdm import tqdm

from genlab.io import atomic_path
from genlab.metrics.inception import INCEPTION_EXTRACTOR, PRECISIONS, weights_identity
from genlab.device import resolve_device

_DATASET = "features"
_PROTOCOL_ATTR = "protocol"
_STATISTIC = "statistic."  # datasets beside the features: what metrics compute from them alone (real_statistics)


@functools.lru_cache(maxsize=4)
def _extractor(name: str, device: str, precision: str, runtime: str) -> torch.nn.Module:
    # Cached: loading the ~90 MB network costs seconds, and callers extract real and fake sets in turn.
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    layer = cls.get_default_feature_layer_for_metric("fid")
    options = {}
    if name == INCEPTION_EXTRACTOR:
        options["runtime"] = runtime
    elif precision != "fp32":
        raise ValueError(f"extractor {name!r} only runs in fp32")
    return create_feature_extractor(
        name,
        [layer],
        cuda=torch.device(device).type == "cuda",
        device=device,
        precision=precision,
        verbose=False,
        **options,
    )


def extract_features(
    images_uint8: torch.Tensor | np.ndarray,
    *,
    extractor_name: str = INCEPTION_EXTRACTOR,
    batch_size: int = 50,
    device: str = "auto",
    precision: str = "fp32",
    runtime: str = "auto",
    desc: str = "features",
) -> np.ndarray:
    """uint8 images (N, C, H, W) -> float32 features (N, D) of a torch-fidelity extractor.

    float32 because the network computes in at most fp32; FID/KID code upcasts where it matters.
    precision "fp32" is the default: on this AVX2-only CPU bf16 autocast is emulated and several times
    slower; pass "bf16" on CUDA (or AMX CPUs) and record it in the protocol. runtime (Inception only):
    "auto" picks ONNX Runtime for fp32 on CPU and TorchScript otherwise (see genlab.metrics.inception).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    images = images_uint8
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))  # views may have negative strides
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("no images given")
    dev = resolve_device(str(device))
    extractor = _extractor(extractor_name, str(dev), precision, runtime)

    chunks = []
    with torch.inference_mode(), tqdm(total=len(images), desc=desc, unit="img", dynamic_ncols=True) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(dev, non_blocking=True)
            (feats,) = extractor(batch)
            chunks.append(feats.float().cpu())
            bar.update(len(batch))
    return torch.cat(chunks).numpy()


def feature_protocol(*, n: int, dataset: str, split: str, precision: str, runtime: str,
                     extractor_name: str = INCEPTION_EXTRACTOR) -> dict:
    """The protocol dict stored with a feature file: what produced these features, from what."""
    protocol = {"extractor": extractor_name, "precision": precision, "N": int(n), "dataset": dataset, "split": split}
    if extractor_name == INCEPTION_EXTRACTOR:
        protocol["runtime"] = runtime
        protocol["weights_file"] = weights_identity()["file"]
        protocol["weights_sha256"] = weights_identity()["sha256"]
    return protocol


def save_features(path: str | Path, feats: np.ndarray, protocol: dict,
                  statistics: Mapping[str, np.ndarray | float] | None = None) -> None:
    """Write features (N, D), the protocol (JSON attribute) and `statistics` computed from them (datasets
    `statistic.<name>`, read by load_statistics) atomically to HDF5, byte-stable."""
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"features must be (N, D), got {feats.shape}")
    if "N" in protocol and protocol["N"] != len(feats):
        raise ValueError(f"protocol N={protocol['N']} but {len(feats)} feature rows")
    with atomic_path(path) as tmp:
        # track_times=False: HDF5 otherwise stamps object headers with the creation time, so identical
        # features would hash differently for DVC.
        with h5py.File(tmp, "w", track_order=False) as f:
            f.create_dataset(_DATASET, data=feats, track_times=False)
            for name, value in sorted((statistics or {}).items()):
                f.create_dataset(_STATISTIC + name, data=np.asarray(value), track_times=False)
            f.attrs[_PROTOCOL_ATTR] = json.dumps(protocol, sort_keys=True)


def load_features(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read (features, protocol) written by `save_features`."""
    with h5py.File(path, "r") as f:
        feats = f[_DATASET][()]
        protocol = json.loads(f.attrs[_PROTOCOL_ATTR])
    return feats, protocol


def load_statistics(path: str | Path) -> dict[str, np.ndarray]:
    """The statistics save_features stored beside a file's features, by name ({} for none)."""
    with h5py.File(path, "r") as f:
        return {key[len(_STATISTIC):]: f[key][()] for key in f if key.startswith(_STATISTIC)}


def real_statistics(feats: np.ndarray) -> dict[str, np.ndarray | float]:
    """What every model's metrics would compute again from a real set's features alone, in every evaluate
    process: KID's kernel sum over its pairs and each point's nearest-neighbour radii. The stage that writes
    the features stores them (save_features' `statistics`); load_real_features hands them to the metrics."""
    from genlab.metrics.fid import real_kernel_sum
    from genlab.metrics.neighbours import real_radii

    if len(feats) < 2:
        return {}
    return {"kid_kernel_sum": real_kernel_sum(feats), "knn_radii": real_radii(feats)}


def load_real_features(path: str | Path) -> tuple[np.ndarray, dict]:
    """(features, protocol) of a real set, its stored statistics (real_statistics) handed to the metrics'
    per-process caches: the numbers are those the metrics compute, read instead of computed."""
    from genlab.metrics.fid import remember_kernel_sum
    from genlab.metrics.neighbours import remember_radii

    feats, protocol = load_features(path)
    statistics = load_statistics(path)
    if "kid_kernel_sum" in statistics:
        remember_kernel_sum(feats, float(statistics["kid_kernel_sum"]))
    if "knn_radii" in statistics:
        remember_radii(feats, statistics["knn_radii"])
    return feats, protocol
