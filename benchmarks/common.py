"""What the benchmark scripts share: Fashion-MNIST's train split read from its IDX files and packed to
HDF5, a freshly seeded params.yaml model, a device sync for timing, and the two training loops that
anchor_loop.py and time_to_quality.py set side by side (genlab's and the way PyTorch-GAN's scripts train).

The scripts run as `python benchmarks/<script>.py`, which puts benchmarks/ first on sys.path, so they
import this module as `common`; it is not a script of its own.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

from genlab.models.base import ModelSpec
from genlab.data.idx import read_idx
from genlab.data.sources import DATASETS
from genlab.models import build_model
from genlab.training.data import TrainData, open_train_data
from genlab.training.loop import MetricWindow

#: Where the Debian package puts Fashion-MNIST's IDX files (the scripts' default --idx).
FASHION_MNIST_IDX = Path(DATASETS["fashion-mnist"].local_dirs[0])
TRAIN_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_IDX = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: One training step's batch: images, labels, and what to do with the step's output (its losses).
Step = tuple[torch.Tensor, torch.Tensor, Callable[[dict[str, torch.Tensor]], None]]


# --------------------------------------------------------------------------- the images
def idx_file(directory: Path, stem: str) -> Path:
    """The IDX file `stem` in `directory`, as it is there: plain, or else gzipped (`stem`.gz)."""
    path = directory / stem
    return path if path.exists() else directory / f"{stem}.gz"


def idx_train_split(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The train images (N, 1, H, W uint8) and labels (int64) of the IDX files in `directory`."""
    images = read_idx(idx_file(directory, TRAIN_IDX[0]))
    labels = read_idx(idx_file(directory, TRAIN_IDX[1])).astype(np.int64)
    return images.reshape(len(images), 1, *images.shape[1:]), labels


def pack(path: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    """Write /train in the packed layout: images chunked by 1024 rows, gzip 4 + shuffle."""
    with h5py.File(path, "w") as f:
        group = f.create_group("train")
        group.create_dataset("images", data=images, chunks=(min(1024, len(images)), *images.shape[1:]),
                             compression="gzip", compression_opts=4, shuffle=True)
        if labels is not None:
            group.create_dataset("labels", data=labels, compression="gzip", compression_opts=4, shuffle=True)
    return path


def in_memory_train_data(images: np.ndarray, labels: np.ndarray, tmp: Path, device: torch.device) -> TrainData:
    """The split packed to `tmp`/train.h5 and opened as genlab holds a split that fits: one uint8 tensor
    on `device`, shuffled by a full permutation each epoch."""
    return open_train_data(pack(tmp / "train.h5", images, labels), device=device, memory_budget_bytes=1 << 62,
                           shuffle_buffer=1 << 20)


# --------------------------------------------------------------------------- the model and the clock
def fresh_model(spec: ModelSpec, shape, num_classes: int, device: torch.device, *, torch_layout: bool = False):
    """A freshly built model of `spec` (torch seed 0), on `device` in training mode, and its optimizers.

    `torch_layout`: in torch's default (NCHW) memory format even where genlab trains the type in
    channels_last, as PyTorch-GAN's scripts do."""
    torch.manual_seed(0)
    model = build_model(spec, tuple(shape), num_classes).to(device).train()
    if torch_layout:
        model.channels_last = False
        model.to(memory_format=torch.contiguous_format)
    return model, model.configure_optimizers()


def sync(device: torch.device) -> None:
    """Wait for the work queued on `device` (a no-op on the CPU), so that a clock read after it is true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the two training loops
def genlab_steps(data: TrainData, batch_size: int, steps: int, log_every: int) -> Iterator[Step]:
    """genlab's loop: index batches of the on-device uint8 split; metrics to the host every log_every steps."""
    windows: list[MetricWindow] = []

    def keep(out: dict[str, torch.Tensor]) -> None:
        if not windows:
            windows.append(MetricWindow(list(out), log_every))
        if windows[0].add(out):
            windows[0].drain()

    gen = torch.Generator().manual_seed(0)
    per_epoch = data.n // batch_size
    done = 0
    while done < steps:
        n = min(per_epoch, steps - done)
        with contextlib.closing(data.batches(data.epoch_order(gen), batch_size, n)) as batches:
            for images, labels in batches:
                yield images, labels, keep
        done += n


def anchor_loader(idx: Path, tmp: Path, size, batch_size: int, workers: int) -> DataLoader:
    """torchvision's FashionMNIST over the same IDX files (unpacked where it looks for them)."""
    from torchvision import datasets, transforms

    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in TRAIN_IDX + TEST_IDX:
        source = idx_file(idx, stem)
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rb") as fin, open(raw / stem, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    transform = transforms.Compose([transforms.Resize(tuple(size)), transforms.ToTensor(),
                                    transforms.Normalize([0.5], [0.5])])
    dataset = datasets.FashionMNIST(str(tmp), train=True, download=False, transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0)


def anchor_steps(loader: DataLoader, device: torch.device, steps: int) -> Iterator[Step]:
    """PyTorch-GAN's loop: DataLoader batches moved to the device; each step's losses printed via .item()."""
    sink = open(os.devnull, "w")
    done = 0

    def report(out: dict[str, torch.Tensor]) -> None:
        print(f"[Batch {done}/{len(loader)}] [D loss: {out['loss_d'].item():f}] [G loss: {out['loss_g'].item():f}]",
              file=sink)

    with sink:
        while done < steps:
            for images, labels in loader:
                yield images.to(device), labels.to(device), report
                done += 1
                if done == steps:
                    return
