"""One network, two training loops, side by side in one run: genlab's against the way PyTorch-GAN's
scripts train, and the ratio of their img/s.

    python benchmarks/anchor_loop.py [--model dcgan] [--steps 150] [--repeats 3] [--workers 0]
        [--precision fp32] [--idx /usr/share/datasets/fashion-mnist]

Both loops train the same params.yaml model (built afresh with the same seed, same optimizers and
`training_step`, so the same network and losses) for the same number of steps of the same batch size
on the same Fashion-MNIST train images:

  genlab       the train split packed to HDF5 and held on the device as one uint8 tensor; a batch is
               an index into it; per-step metrics stay on the device and reach the host every
               `train.log_every` steps in one transfer (genlab.training.loop); weights and images in
               channels_last where genlab trains the type so (GenerativeModel.channels_last).
  PyTorch-GAN  torchvision's FashionMNIST dataset (PIL images) with Resize + ToTensor + Normalize,
               a DataLoader(shuffle=True, --workers), and every step's D and G losses read with
               `.item()` and printed (here to /dev/null), as implementations/*/<model>.py do; torch's
               default NCHW layout.

The loops alternate (`--repeats` rounds), each after `--warmup` untimed steps; the table gives the
median img/s of each and their ratio. Name the CPU (lscpu) and the load (uptime) with the numbers.
`--smoke` runs 2 steps of each, for the test suite: it checks the loops run, not their speed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import (FASHION_MNIST_IDX, anchor_loader, anchor_steps, fresh_model, genlab_steps, idx_train_split,
                    in_memory_train_data, sync)
from genlab.config import load_params
from genlab.data.sources import DATASETS
from genlab.device import autocast, resolve_device, resolve_precision


def main() -> None:
    args = _parse_args()
    params = load_params()
    spec = params.model(args.model)
    device = resolve_device(args.device or params.train["device"])
    precision = resolve_precision(args.precision or params.train["precision"], device)
    steps, warmup, repeats = (2, 1, 1) if args.smoke else (args.steps, args.warmup, args.repeats)
    with tempfile.TemporaryDirectory(prefix="anchor-bench-") as tmp:
        images, labels = idx_train_split(args.idx)
        data = in_memory_train_data(images, labels, Path(tmp), device)
        loader = anchor_loader(args.idx, Path(tmp), images.shape[-2:], spec.batch_size, args.workers)
        loops = {"genlab": lambda n: genlab_steps(data, spec.batch_size, n, params.train["log_every"]),
                 "PyTorch-GAN": lambda n: anchor_steps(loader, device, n)}
        print(f"model={spec.name} type={spec.type} batch={spec.batch_size} device={device} precision={precision} "
              f"threads={torch.get_num_threads()} workers={args.workers} steps={steps} warmup={warmup} "
              f"repeats={repeats} load={os.getloadavg()[0]:.2f}")
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(repeats):
            for name, batches in loops.items():
                seconds = _train(spec, images.shape[1:], DATASETS["fashion-mnist"].num_classes, batches, steps,
                                 warmup, device, precision, torch_layout=name == "PyTorch-GAN")
                rates[name].append(steps * spec.batch_size / seconds)
    for name, values in rates.items():
        print(f"{name:12s} {statistics.median(values):8.1f} img/s  ({', '.join(f'{v:.1f}' for v in values)})")
    ratio = statistics.median(rates["genlab"]) / statistics.median(rates["PyTorch-GAN"])
    print(f"ratio genlab / PyTorch-GAN: {ratio:.2f}x")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dcgan", help="a key of params.yaml's models (default: dcgan)")
    parser.add_argument("--idx", type=Path, default=FASHION_MNIST_IDX,
                        help="the directory of Fashion-MNIST's train IDX files (default: the Debian package's)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the PyTorch-GAN loop")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: params.yaml's)")
    parser.add_argument("--precision", default=None, help="fp32, bf16 or auto (default: params.yaml's)")
    parser.add_argument("--smoke", action="store_true", help="2 steps of each loop, 1 round (for the tests)")
    return parser.parse_args()


def _train(spec, shape, num_classes, batches, steps, warmup, device, precision, torch_layout: bool) -> float:
    """Seconds of `steps` training steps after `warmup` untimed ones, for a freshly built model."""
    model, optimizers = fresh_model(spec, shape, num_classes, device, torch_layout=torch_layout)
    start = 0.0
    for step, (x, y, after_step) in enumerate(batches(warmup + steps)):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        if x.dtype == torch.uint8:  # genlab's batches: converted on the device, as the training loop does
            x = model.to_input(x)
        with autocast(device, precision):
            out = model.training_step(x, y, optimizers, step)
        after_step(out)
    sync(device)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
