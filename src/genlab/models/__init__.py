"""Model registry: every model type users can name in params.yaml (`models.<name>.type`)."""
from genlab.models.base import MODEL_TYPES, GenerativeModel, register_model
from genlab.models import adversarial, autoencoders, classifying  # noqa: F401  (register types)


def build_model(spec, image_shape, num_classes) -> GenerativeModel:
    return MODEL_TYPES[spec.type](spec, tuple(image_shape), num_classes)


__all__ = ["MODEL_TYPES", "GenerativeModel", "register_model", "build_model"]
