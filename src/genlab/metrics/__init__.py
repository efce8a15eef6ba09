"""Sample-quality metrics: offline FID-Inception features, feature files, FID and KID, and the metric
registry (genlab.metrics.registry) that every evaluation runs through."""
from genlab.metrics.features import extract_features, feature_protocol, load_features, save_features
from genlab.metrics.fid import compute_fid_kid
from genlab.metrics.inception import (
    INCEPTION_EXTRACTOR,
    InceptionV3TFFidHelper,
    weights_identity,
    weights_path,
)
from genlab.metrics.registry import check_metrics, is_valid_metric, list_valid_metrics, register_metric

__all__ = [
    "INCEPTION_EXTRACTOR",
    "InceptionV3TFFidHelper",
    "check_metrics",
    "compute_fid_kid",
    "extract_features",
    "feature_protocol",
    "is_valid_metric",
    "list_valid_metrics",
    "load_features",
    "register_metric",
    "save_features",
    "weights_identity",
    "weights_path",
]
