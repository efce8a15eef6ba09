"""Model registry: every model type users can name in params.yaml (`models.<name>.type`)."""
import torch

from genlab.models.base import MODEL_TYPES, GenerativeModel, register_model
from genlab.models import adversarial, autoencoders, classifying, translation  # noqa: F401  (register types)


def build_model(spec, image_shape, num_classes, input_shape=None) -> GenerativeModel:
    """The model of `spec`; `input_shape` (C, H, W of a task's inputs) for image-to-image types."""
    cls = MODEL_TYPES[spec.type]
    if cls.trains_on == "task":
        model = cls(spec, tuple(image_shape), num_classes, tuple(input_shape or image_shape))
    else:
        model = cls(spec, tuple(image_shape), num_classes)
    if model.channels_last:  # its conv weights too; `to_input` gives its images the same layout
        model.to(memory_format=torch.channels_last)
    return model


__all__ = ["MODEL_TYPES", "GenerativeModel", "register_model", "build_model"]
