"""Model registry: every model type users can name in params.yaml (`models.<name>.type`)."""
from genlab.models.base import MODEL_TYPES, GenerativeModel, register_model
from genlab.models import adversarial, autoencoders, classifying, translation  # noqa: F401  (register types)


def build_model(spec, image_shape, num_classes, input_shape=None) -> GenerativeModel:
    """The model of `spec`; `input_shape` (C, H, W of a task's inputs) for image-to-image types."""
    cls = MODEL_TYPES[spec.type]
    if cls.translation:
        return cls(spec, tuple(image_shape), num_classes, tuple(input_shape or image_shape))
    return cls(spec, tuple(image_shape), num_classes)


__all__ = ["MODEL_TYPES", "GenerativeModel", "register_model", "build_model"]
