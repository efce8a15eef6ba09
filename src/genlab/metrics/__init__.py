"""Sample-quality metrics: offline FID-Inception features, feature files, FID and KID."""
from genlab.metrics.features import extract_features, feature_protocol, load_features, save_features
from genlab.metrics.fid import compute_fid_kid
from genlab.metrics.inception import (
    INCEPTION_EXTRACTOR,
    InceptionV3TFFidHelper,
    weights_identity,
    weights_path,
)

__all__ = [
    "INCEPTION_EXTRACTOR",
    "InceptionV3TFFidHelper",
    "compute_fid_kid",
    "extract_features",
    "feature_protocol",
    "load_features",
    "save_features",
    "weights_identity",
    "weights_path",
]
