"""One network, two training loops, side by side in one run: genlab's against the way PyTorch-GAN's
scripts train, and the ratio of their img/s.

    python benchmarks/anchor_loop.py [--model dcgan] [--steps 150] [--repeats 3] [--workers 0]
        [--precision fp32] [--idx /usr/share/datasets/fashion-mnist]

Both loops train the same params.yaml model (built afresh with the same seed, same optimizers and
`training_step`, so the same network and losses) for the same number of steps of the same batch size
on the same Fashion-MNIST train images:

  genlab       the train split packed to HDF5 and held on the device as one uint8 tensor; a batch is
               an index into it; per-step metrics stay on the device and reach the host every
               `train.log_every` steps in one transfer (genlab.training.loop).
  PyTorch-GAN  torchvision's FashionMNIST dataset (PIL images) with Resize + ToTensor + Normalize,
               a DataLoader(shuffle=True, --workers), and every step's D and G losses read with
               `.item()` and printed (here to /dev/null), as implementations/*/<model>.py do.

The loops alternate (`--repeats` rounds), each after `--warmup` untimed steps; the table gives the
median img/s of each and their ratio. Name the CPU (lscpu) and the load (uptime) with the numbers.
`--smoke` runs 2 steps of each, for the test suite: it checks the loops run, not their speed.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from genlab.config import load_params
from genlab.data.sources import DATASETS
from genlab.models import build_model
from genlab.training.data import open_train_data
from genlab.training.device import autocast, resolve_device, resolve_precision
from loader_throughput import _idx_train_split, _pack

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def main() -> None:
    args = _parse_args()
    params = load_params()
    spec = params.model(args.model)
    device = resolve_device(args.device or params.train["device"])
    precision = resolve_precision(args.precision or params.train["precision"], device)
    steps, warmup, repeats = (2, 1, 1) if args.smoke else (args.steps, args.warmup, args.repeats)
    with tempfile.TemporaryDirectory(prefix="anchor-bench-") as tmp:
        images, labels = _idx_train_split(args.idx)
        packed = _pack(Path(tmp) / "train.h5", images, labels)
        data = open_train_data(packed, device=device, memory_budget_bytes=1 << 62, shuffle_buffer=1 << 20)
        loader = _anchor_loader(args.idx, Path(tmp), images.shape[-2:], spec.batch_size, args.workers)
        loops = {"genlab": lambda n: _genlab_steps(data, spec.batch_size, n, params.train["log_every"]),
                 "PyTorch-GAN": lambda n: _anchor_steps(loader, device, n)}
        print(f"model={spec.name} type={spec.type} batch={spec.batch_size} device={device} precision={precision} "
              f"threads={torch.get_num_threads()} workers={args.workers} steps={steps} warmup={warmup} "
              f"repeats={repeats} load={os.getloadavg()[0]:.2f}")
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(repeats):
            for name, batches in loops.items():
                seconds = _train(spec, images.shape[1:], DATASETS["fashion-mnist"].num_classes, batches, steps,
                                 warmup, device, precision)
                rates[name].append(steps * spec.batch_size / seconds)
    for name, values in rates.items():
        print(f"{name:12s} {statistics.median(values):8.1f} img/s  ({', '.join(f'{v:.1f}' for v in values)})")
    ratio = statistics.median(rates["genlab"]) / statistics.median(rates["PyTorch-GAN"])
    print(f"ratio genlab / PyTorch-GAN: {ratio:.2f}x")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dcgan", help="a key of params.yaml's models (default: dcgan)")
    parser.add_argument("--idx", type=Path, default=Path(DATASETS["fashion-mnist"].local_dirs[0]),
                        help="the directory of Fashion-MNIST's train IDX files (default: the Debian package's)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the PyTorch-GAN loop")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: params.yaml's)")
    parser.add_argument("--precision", default=None, help="fp32, bf16 or auto (default: params.yaml's)")
    parser.add_argument("--smoke", action="store_true", help="2 steps of each loop, 1 round (for the tests)")
    return parser.parse_args()


def _train(spec, shape, num_classes, batches, steps, warmup, device, precision) -> float:
    """Seconds of `steps` training steps after `warmup` untimed ones, for a freshly built model."""
    torch.manual_seed(0)
    model = build_model(spec, tuple(shape), num_classes).to(device).train()
    optimizers = model.configure_optimizers()
    start = 0.0
    for step, (x, y, after_step) in enumerate(batches(warmup + steps)):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        if x.dtype == torch.uint8:  # genlab's batches: converted on the device, as the training loop does
            x = model.to_input(x)
        with autocast(device, precision):
            out = model.training_step(x, y, optimizers, step)
        after_step(out)
    _sync(device)
    return time.perf_counter() - start


def _genlab_steps(data, batch_size: int, steps: int, log_every: int):
    """genlab's loop: index batches of the on-device uint8 split; metrics to the host every log_every steps."""
    window: list[torch.Tensor] = []

    def keep(out: dict[str, torch.Tensor]) -> None:
        window.append(torch.stack([v.detach().float() for v in out.values()]))
        if len(window) == log_every:
            torch.stack(window).cpu()
            window.clear()

    gen = torch.Generator().manual_seed(0)
    per_epoch = data.n // batch_size
    done = 0
    while done < steps:
        n = min(per_epoch, steps - done)
        with contextlib.closing(data.batches(data.epoch_order(gen), batch_size, n)) as batches:
            for images, labels in batches:
                yield images, labels, keep
        done += n


def _anchor_loader(idx: Path, tmp: Path, size, batch_size: int, workers: int) -> DataLoader:
    """torchvision's FashionMNIST over the same IDX files (unpacked where it looks for them)."""
    from torchvision import datasets, transforms

    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in IDX_FILES + ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        source = idx / stem if (idx / stem).exists() else idx / f"{stem}.gz"
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rb") as fin, open(raw / stem, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    transform = transforms.Compose([transforms.Resize(tuple(size)), transforms.ToTensor(),
                                    transforms.Normalize([0.5], [0.5])])
    dataset = datasets.FashionMNIST(str(tmp), train=True, download=False, transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0)


def _anchor_steps(loader: DataLoader, device: torch.device, steps: int):
    """PyTorch-GAN's loop: DataLoader batches moved to the device; each step's losses printed via .item()."""
    sink = open(os.devnull, "w")
    done = 0

    def report(out: dict[str, torch.Tensor]) -> None:
        print(f"[Batch {done}/{len(loader)}] [D loss: {out['loss_d'].item():f}] [G loss: {out['loss_g'].item():f}]",
              file=sink)

    with sink:
        while done < steps:
            for images, labels in loader:
                yield images.to(device), labels.to(device), report
                done += 1
                if done == steps:
                    return


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
