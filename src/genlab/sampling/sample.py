"""Draw samples from a trained model into an HDF5 file (uint8 images, labels when conditional)."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from genlab.io import atomic_path
from genlab.models import GenerativeModel
from genlab.sampling.grid import balanced_labels, rows_per_class, save_grid, to_uint8


@torch.no_grad()
def generate_samples(model: GenerativeModel, n: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples as uint8 (n, C, H, W) on the CPU; conditional models get balanced labels."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    labels = balanced_labels(n, model.num_classes) if model.conditional else None
    chunks = []
    with tqdm(total=n, desc=f"sample {model.spec.name}", unit="img", dynamic_ncols=True) as bar:
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = model.sample_latent(m, generator=gen)
            y = labels[start:start + m].to(model.device) if labels is not None else None
            chunks.append(to_uint8(model.generate(z, y)).cpu())
            bar.update(m)
    return torch.cat(chunks), labels


def write_samples(path: Path, images: torch.Tensor, labels: torch.Tensor | None, attrs: dict) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver=("earliest", "v110")) as f:
            f.create_dataset("images", data=images.numpy(), chunks=(min(1024, len(images)), *images.shape[1:]),
                             compression="gzip", compression_opts=4, shuffle=True, track_times=False)
            if labels is not None:
                f.create_dataset("labels", data=labels.numpy().astype(np.int64), track_times=False)
            f.attrs["info"] = json.dumps(attrs, sort_keys=True)


def read_samples(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    with h5py.File(path, "r") as f:
        labels = f["labels"][()] if "labels" in f else None
        return f["images"][()], labels, json.loads(f.attrs["info"])


def sample_grid(path: Path, images: torch.Tensor, labels: torch.Tensor | None, num_classes: int, size: int) -> None:
    """A grid PNG: one row per class for conditional models (as in seed 004), else a square."""
    if labels is not None:
        per_row = max(1, size // num_classes)
        save_grid(path, rows_per_class(images, labels, num_classes, per_row), nrow=per_row)
    else:
        save_grid(path, images[:size])
