"""Grids of a model's samples, the pictures people look at: a square of images, one row per class for a
conditional model, and for an image-to-image model columns of input, output and target."""
from __future__ import annotations

import math

import torch

from genlab.data.tasks import to_target_geometry
from genlab.grid import rows_per_class
from genlab.models.samples import Prompts, Samples

COMPARISON_COLUMNS = 8  # examples per row of an input / output / target grid


def comparison_examples(size: int) -> int:
    """Examples shown in a grid of about `size` tiles when each takes three (input, output, target): whole
    rows of COMPARISON_COLUMNS, at least one row."""
    return max(COMPARISON_COLUMNS, size // 3 // COMPARISON_COLUMNS * COMPARISON_COLUMNS)


def grid_prompts(model, size: int, source) -> Prompts:
    """What a grid of about `size` tiles draws, fixed once: an epoch grid shows the same draws every epoch."""
    prompts = model.prompts(size, source)
    return prompts.head(comparison_examples(size)) if prompts.inputs is not None else prompts


def grid_tiles(samples: Samples, num_classes: int, size: int | None = None) -> tuple[torch.Tensor, int]:
    """(uint8 tiles, columns) of a grid of about `size` tiles (None: of all the samples); outputs without
    targets (images given to `genlab generate`) are shown as a square."""
    if samples.translated and samples.targets is not None:
        k = len(samples.images) if size is None else comparison_examples(size)
        return comparison_rows(samples.inputs[:k], samples.images[:k], samples.targets[:k],
                               tuple(samples.images.shape[1:]))
    size = len(samples.images) if size is None else size
    if samples.labels is not None:
        per_row = max(1, size // num_classes)
        return rows_per_class(samples.images, samples.labels, num_classes, per_row), per_row
    images = samples.images[:size]
    return images, math.ceil(math.sqrt(len(images)))


def comparison_rows(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor,
                    shape: tuple[int, int, int], per_row: int = COMPARISON_COLUMNS) -> tuple[torch.Tensor, int]:
    """uint8 tiles for a grid of `per_row` columns: for each run of examples, a row of inputs, one of
    outputs and one of targets (input, output and target of one example stacked in a column)."""
    inputs = torch.from_numpy(to_target_geometry(inputs.cpu().numpy(), shape)).to(outputs.device)
    targets = targets.to(outputs.device).expand(-1, shape[0], -1, -1)
    rows = []
    for start in range(0, len(outputs), per_row):
        part = slice(start, start + per_row)
        block = [inputs[part], outputs[part], targets[part]]
        if len(block[0]) < per_row:  # pad the last run with white tiles
            pad = torch.full((per_row - len(block[0]), *shape), 255, dtype=torch.uint8, device=outputs.device)
            block = [torch.cat([b, pad]) for b in block]
        rows.extend(block)
    return torch.cat(rows), per_row
