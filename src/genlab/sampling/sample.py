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
from genlab.grid import balanced_labels, rows_per_class, save_grid, to_uint8


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


@torch.no_grad()
def translate_samples(model, task_path: Path, n: int, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    """An image-to-image model's outputs for the first n test inputs of its task, with those inputs,
    the test targets (row for row: for a paired task the inputs' own), the cycle models'
    reconstructions, and PixelDA's predicted classes for every test target (with their labels)."""
    from genlab.data.hdf5 import read_inputs, read_split

    inputs, _ = read_inputs(task_path, "test", limit=n)
    targets, target_labels = read_split(task_path, "test")
    n = min(n, len(inputs), len(targets))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {}
    with tqdm(total=n, desc=f"translate {model.spec.name}", unit="img", dynamic_ncols=True) as bar:
        for start in range(0, n, batch_size):
            chunk = torch.from_numpy(inputs[start:start + batch_size])
            for key, value in model.translate_images(chunk, gen).items():
                parts.setdefault(key, []).append(to_uint8(value).cpu())
            bar.update(len(chunk))
    out = {key: torch.cat(value) for key, value in parts.items()}
    out["inputs"], out["targets"] = torch.from_numpy(inputs[:n]), torch.from_numpy(targets[:n])
    if model.classifies:
        all_targets = torch.from_numpy(targets)
        out["task_predictions"] = torch.cat([model.classify(model.to_input(c.to(model.device))).argmax(1).cpu()
                                             for c in all_targets.split(batch_size)])
        out["task_labels"] = torch.from_numpy(target_labels)
    return out


def write_samples(path: Path, images: torch.Tensor, labels: torch.Tensor | None, attrs: dict,
                  extra: dict[str, torch.Tensor] | None = None) -> None:
    """`images` (and `labels`) as a byte-stable HDF5 file; `extra` arrays (a translation's inputs,
    targets, ...) beside them; `attrs` as the JSON `info` attribute."""
    arrays = {"images": images, **({"labels": labels} if labels is not None else {}), **(extra or {})}
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


def translation_grid(path: Path, samples: dict[str, torch.Tensor], shape, size: int) -> None:
    """Input, output and target stacked in columns, 8 examples a row: the first size // 3 examples,
    rounded down to whole rows."""
    from genlab.models.translation import GRID_COLUMNS, comparison_rows

    k = max(GRID_COLUMNS, size // 3 // GRID_COLUMNS * GRID_COLUMNS)
    tiles, per_row = comparison_rows(samples["inputs"][:k], samples["images"][:k], samples["targets"][:k], shape)
    save_grid(path, tiles, nrow=per_row)


def sample_grid(path: Path, images: torch.Tensor, labels: torch.Tensor | None, num_classes: int, size: int) -> None:
    """A grid PNG: one row per class for conditional models (as in seed 004), else a square."""
    if labels is not None:
        per_row = max(1, size // num_classes)
        save_grid(path, rows_per_class(images, labels, num_classes, per_row), nrow=per_row)
    else:
        save_grid(path, images[:size])


def sample_seed(params, name: str, data: Path, model_dir: Path, out: Path, grid: Path, seed: int, device) -> None:
    """One training seed's samples file and grid: sample.num_samples images drawn with the seed's own noise
    (the first eval.num_fake of them are what the Inception metrics score)."""
    from genlab.models.files import load_model

    cfg = params.sample
    model = load_model(model_dir, device, cfg["checkpoint"])
    info = {"model": name, "type": model.type_name, "seed": seed, "train_precision": model.train_precision,
            "checkpoint": cfg["checkpoint"]}
    if model.translation:  # the first N test inputs of its task, translated
        samples = translate_samples(model, data, cfg["num_samples"], cfg["batch_size"], seed)
        images = samples.pop("images")
        write_samples(out, images, None, {**info, "n": len(images), "translation": True,
                                          "task": params.model(name).dataset, "paired": model.paired is True}, samples)
        translation_grid(grid, {"images": images, **samples}, model.image_shape, cfg["grid_size"])
    else:
        images, labels = generate_samples(model, cfg["num_samples"], cfg["batch_size"], seed)
        write_samples(out, images, labels, {**info, "n": len(images)})
        sample_grid(grid, images, labels, model.num_classes, cfg["grid_size"])
