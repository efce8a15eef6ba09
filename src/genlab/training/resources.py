"""What the train stage hands a model's `prepare` besides the data (genlab.models.base.Resources): the task's
settings, and the perceptual features a content loss compares, built here from the files the stage was given."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torch import nn


@dataclass(frozen=True)
class StageResources:
    task: Mapping[str, Any] | None  # the task's settings (image-to-image models), else None
    classifier_path: Path | None  # the dataset classifier given to the train stage

    def content_features(self, choice: str, owner: str) -> tuple[nn.Module, str]:
        from genlab.objectives.perceptual import VGG19_WEIGHTS, vgg19_conv3_4, vgg19_weights_path

        vgg = vgg19_weights_path()
        if choice in ("auto", "vgg19") and vgg.is_file():
            return vgg19_conv3_4(vgg), f"vgg19 conv3_4 ({VGG19_WEIGHTS})"
        if choice == "vgg19":
            raise FileNotFoundError(f"{owner}.content_features: vgg19, but {vgg} is not on disk; "
                                    f"put torchvision's {VGG19_WEIGHTS} there, or set content_features: classifier")
        from genlab.classifier_net import build_classifier
        from genlab.io import file_digest
        from genlab.torch_io import load_weights

        path = Path(self.classifier_path)
        blob = load_weights(path, f"re-run `dvc repro task_reference@{path.stem}`", ("state_dict", "reason"))
        if blob["state_dict"] is None:
            raise ValueError(f"{owner}: no VGG19 weights and {path} has no classifier "
                             f"({blob['reason']}); put torchvision's {VGG19_WEIGHTS} in {vgg.parent}")
        digest = file_digest(path, "sha256")[:12]
        return (build_classifier(blob).trunk[:7],
                f"dataset classifier conv block 2 ({path.name}, sha256 {digest})")
