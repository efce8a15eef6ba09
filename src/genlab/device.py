"""Device and precision choice: CUDA when present; fp32 unless params ask for something else.

`fp32` is IEEE fp32 on every device and in every part of a stage: on CUDA, cuDNN convolutions default
to TF32 (10-bit mantissa) in PyTorch, so resolving a CUDA device turns TF32 off for the whole process
(sampling, best-checkpoint scores, the evaluator and the feature extractors included), and makes CUDA
deterministic (cuDNN's deterministic kernels, torch's deterministic algorithms, a fixed cuBLAS
workspace): a resumed run and the audit's retrain give the bytes they give on the CPU, or a warning
names the op that has no deterministic CUDA kernel. `bf16` is autocast to bfloat16. `auto` picks bf16 where the hardware makes it fast (CUDA, CPUs with AMX or AVX512-BF16;
on AVX2-only CPUs PyTorch emulates bf16 and it is many times slower): a different experiment on
different hardware, so it is opt-in and the resolved precision is recorded with every run and metric.
"""
from __future__ import annotations

import contextlib
import os

import torch

#: cuBLAS's deterministic workspace setting (read when its first handle is made, so set before CUDA starts).
CUBLAS_WORKSPACE = ":4096:8"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device: cuda was asked for but no CUDA device is visible; "
                           "set train.device: auto or cpu")
    device = torch.device(name)
    if device.type == "cuda":
        configure_cuda()
    return device


def configure_cuda() -> None:
    """IEEE fp32 (no TF32) and deterministic kernels for the rest of the process; idempotent."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # warn_only: an op with no deterministic CUDA kernel warns (naming it) instead of failing the stage
    torch.use_deterministic_algorithms(True, warn_only=True)


def cuda_settings() -> dict:
    """What configure_cuda set, as recorded with a run (the audit compares them)."""
    return {"fp32_precision": torch.backends.cuda.matmul.fp32_precision,
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}


def processes_problem(nproc: int, device: torch.device) -> str | None:
    """Why train.nproc cannot run on `device` (None: it can): on CUDA one process per visible GPU at most;
    torchrun's workers would otherwise fail with "invalid device ordinal"."""
    visible = torch.cuda.device_count() if device.type == "cuda" else None
    if visible is None or nproc <= visible:
        return None
    return (f"got {nproc}, but {visible} CUDA device{'s are' if visible != 1 else ' is'} visible (one process "
            f"per GPU); set train.nproc to at most {visible}, or CUDA_VISIBLE_DEVICES to show more GPUs")


def cpu_has_fast_bf16() -> bool:
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return ieee_fp32()


@contextlib.contextmanager
def ieee_fp32():
    """fp32 matmuls and convolutions in full IEEE fp32 (no TF32 on CUDA), restored afterwards."""
    backends = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    saved = [b.fp32_precision for b in backends]
    try:
        for b in backends:
            b.fp32_precision = "ieee"
        yield
    finally:
        for b, value in zip(backends, saved):
            b.fp32_precision = value
