"""genlab: a reproducible DVC + MLflow pipeline for image generative models."""
__version__ = "0.1.0"
