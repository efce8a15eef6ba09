"""The random draws of a training step, row by row of the batch: the same for N data-parallel processes
as for one process on the whole batch.

Under `train.nproc: N` every process seeds the global generator alike, draws the rows of the whole
global batch and keeps its own 1/N of them; with one process a draw is exactly the call it replaces,
so single-process training is unchanged bit for bit. What a model draws through the global generator
by itself (dropout masks) is drawn per process, and is the one thing that differs from one process.
"""
from __future__ import annotations

from typing import Callable

import torch

_shard = (0, 1)  # (this process's rank, number of processes)


def set_shard(rank: int, world: int) -> None:
    """Called once by data-parallel training (genlab.training.distributed) before the first step."""
    global _shard
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    _shard = (rank, world)


def batch_draw(draw: Callable[..., torch.Tensor], n: int, *shape: int, **kwargs) -> torch.Tensor:
    """`draw(n, *shape, **kwargs)` for this process's n rows of the global batch."""
    rank, world = _shard
    if world == 1:
        return draw(n, *shape, **kwargs)
    return draw(n * world, *shape, **kwargs)[rank * n:(rank + 1) * n]


def draw_like(draw: Callable[..., torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """`torch.randn_like(t)` (draw=torch.randn) or `rand_like`, through batch_draw."""
    return batch_draw(draw, t.size(0), *t.shape[1:], dtype=t.dtype, device=t.device)
