"""Device and precision choice: CUDA when present; fp32 unless params ask for something else.

`fp32` is IEEE fp32 on every device: on CUDA, cuDNN convolutions default to TF32 (10-bit mantissa)
in PyTorch, so `autocast(..., "fp32")` turns TF32 off for its duration. `bf16` is autocast to
bfloat16. `auto` picks bf16 where the hardware makes it fast (CUDA, CPUs with AMX or AVX512-BF16;
on AVX2-only CPUs PyTorch emulates bf16 and it is many times slower): a different experiment on
different hardware, so it is opt-in and the resolved precision is recorded with every run and metric.
"""
from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device: cuda was asked for but no CUDA device is visible; "
                           "set train.device: auto or cpu")
    return torch.device(name)


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
