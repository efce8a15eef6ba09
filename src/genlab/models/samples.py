"""What a model is asked to draw (`Prompts`) and what it gives back (`Samples`).

Every consumer of a model's output reads one `Samples`: the sample stage's samples file and grid, the
epoch grids, checkpoint selection, `genlab generate` and the MLflow pyfunc model; the evaluate stage
picks its metric kinds from what the samples file holds. A noise-to-image model's samples are images
(with the class each was drawn for, when it is conditional); an image-to-image model's are its outputs
with the inputs they translate, the targets they are compared with and its further outputs (a cycle
model's reconstructions). Nothing downstream asks which kind of model made them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Protocol

import torch


class PromptSource(Protocol):
    """Rows to draw prompts from: a training split (genlab.training.data) or a task's test split."""

    def head(self, k: int | None) -> tuple:
        """The first k rows: (images, labels) for a dataset, ((inputs, targets), labels) for a task."""
        ...


@dataclass(frozen=True)
class Prompts:
    """What `n` samples are drawn for: nothing but noise, the class of each (conditional models), or the
    uint8 images to translate with the targets their outputs are compared with (image-to-image models)."""

    n: int
    labels: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None

    def head(self, k: int) -> "Prompts":
        """The first k prompts."""
        cut = {name: None if value is None else value[:k]
               for name, value in (("labels", self.labels), ("inputs", self.inputs), ("targets", self.targets))}
        return replace(self, n=min(k, self.n), **cut)


@dataclass(frozen=True)
class Samples:
    """uint8 (n, C, H, W) images on the CPU, and what they were drawn for (see `Prompts`). `extras`: further
    per-sample outputs stored beside the images (an image-to-image cycle model's "reconstructions")."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    paired: bool = False  # each target is its input's own (a paired task)

    @property
    def translated(self) -> bool:
        """Whether the images are outputs for inputs (scored against targets) rather than drawn from noise."""
        return self.inputs is not None

    def arrays(self) -> dict[str, torch.Tensor]:
        """The arrays a samples file holds, in the file's order."""
        out = {"images": self.images, **({"labels": self.labels} if self.labels is not None else {}), **self.extras}
        if self.translated:
            out["inputs"], out["targets"] = self.inputs, self.targets
        return out

    def info(self) -> dict[str, bool]:
        """What the samples file's `info` says about them (the evaluate stage's metric kinds follow from it)."""
        return {"translation": True, "paired": self.paired} if self.translated else {}
