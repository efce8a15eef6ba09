"""The optimizers genlab trains with, and the one optimizer step every training step takes.

Adam runs PyTorch's fused kernel on every device (CPU and CUDA alike), RMSprop its multi-tensor
(foreach) path, so a model trains with one optimizer implementation wherever it runs; without the
flag PyTorch would loop over the parameters one tensor at a time on CPU and use foreach on CUDA.
Side by side on a 2-core AMD EPYC Zen 3 (``benchmarks/train_throughput.py``), fused Adam trains
the MLP GANs about 1.3-1.5x faster and DCGAN about 1.1x (benchmarks/README.md).
"""
from __future__ import annotations

from typing import Iterable

import torch


def adam(params: Iterable, lr: float, betas) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015), fused."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)


def rmsprop(params: Iterable, lr: float) -> torch.optim.RMSprop:
    """RMSprop at PyTorch's defaults (alpha 0.99, eps 1e-8), as the WGAN paper's critic and generator."""
    return torch.optim.RMSprop(params, lr=lr, foreach=True)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Clear the gradients of the optimizer's parameters, back-propagate the loss, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
