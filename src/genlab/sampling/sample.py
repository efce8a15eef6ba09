"""The sample stage: draw from a trained model into an HDF5 samples file (uint8 images, with the labels they were
drawn for, or an image-to-image model's inputs, targets and further outputs) and a grid PNG."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from genlab.grid import save_grid
from genlab.io import atomic_path
from genlab.sampling.grid import grid_tiles


class TestSplit:
    """A packed task's test split as prompts are drawn from it: its first k inputs and first k targets (row for
    row for a paired task). Nothing is read until asked (a noise-to-image model never asks)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def head(self, k: int | None):
        from genlab.data.hdf5 import read_inputs, read_split

        inputs, _ = read_inputs(self.path, "test", limit=k)
        targets, _ = read_split(self.path, "test", limit=k)
        return (torch.from_numpy(inputs), torch.from_numpy(targets)), None


def draw_samples(model, n: int, batch_size: int, seed: int, source=None, progress: str | None = None):
    """`n` samples of `model` (the first n inputs of `source` translated, for an image-to-image model; a task file
    is read as its test split), in passes of `batch_size`, with noise seeded by `seed`."""
    source = TestSplit(source) if isinstance(source, (str, Path)) else source
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return model.sample(model.prompts(n, source), generator, batch_size, progress)


@torch.no_grad()
def task_predictions(model, task_path: Path, batch_size: int) -> dict[str, torch.Tensor]:
    """A model's task classifier's predicted class of every test target, with the targets' labels (PixelDA)."""
    from genlab.data.hdf5 import read_split

    targets, labels = read_split(task_path, "test")
    predictions = [model.classify(model.to_input(chunk.to(model.device))).argmax(1).cpu()
                   for chunk in torch.from_numpy(targets).split(batch_size)]
    return {"task_predictions": torch.cat(predictions), "task_labels": torch.from_numpy(labels)}


def write_samples(path: Path, arrays: dict[str, torch.Tensor], attrs: dict) -> None:
    """`arrays` (images first, then labels, a translation's further outputs, inputs, targets) as a byte-stable
    HDF5 file; `attrs` as its JSON `info` attribute."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver=("earliest", "v110")) as f:
            for name, array in arrays.items():
                array = array.numpy()
                if array.ndim == 4:
                    f.create_dataset(name, data=array, chunks=(min(1024, len(array)), *array.shape[1:]),
                                     compression="gzip", compression_opts=4, shuffle=True, track_times=False)
                else:
                    f.create_dataset(name, data=array.astype(np.int64), track_times=False)
            f.attrs["info"] = json.dumps(attrs, sort_keys=True)


def read_samples(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    with h5py.File(path, "r") as f:
        labels = f["labels"][()] if "labels" in f else None
        return f["images"][()], labels, json.loads(f.attrs["info"])


def sample_seed(params, name: str, data: Path, model_dir: Path, out: Path, grid: Path, seed: int, device) -> None:
    """One training seed's samples file and grid: sample.num_samples samples drawn with the seed's own noise (the
    first eval.num_fake of them are what the Inception metrics score); an image-to-image model translates the
    first sample.num_samples test inputs of its task."""
    from genlab.models.files import load_model

    cfg = params.sample
    model = load_model(model_dir, device, cfg["checkpoint"])
    samples = draw_samples(model, cfg["num_samples"], cfg["batch_size"], seed, data, progress=f"sample {name}")
    arrays = samples.arrays()
    if model.classifies:
        arrays.update(task_predictions(model, data, cfg["batch_size"]))
    info = {"model": name, "type": model.type_name, "seed": seed, "train_precision": model.train_precision,
            "checkpoint": cfg["checkpoint"], "n": len(samples.images), **samples.info()}
    if samples.translated:
        info["task"] = params.model(name).dataset
    write_samples(out, arrays, info)
    save_grid(grid, *grid_tiles(samples, model.num_classes, cfg["grid_size"]))
