"""Device and precision choice: CUDA when present, bf16 autocast only where it is fast.

bf16 autocast is ~3x faster than fp32 on CPUs with AMX or AVX512-BF16, but on AVX2-only
CPUs PyTorch emulates it and it is ~50x *slower*, so `auto` checks the hardware.
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
    return contextlib.nullcontext()
