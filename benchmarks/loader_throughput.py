"""Data-loading throughput (img/s): shuffled uint8 batches delivered to the training device as
float model inputs in [-1, 1], by genlab's two loaders and by PyTorch-GAN's usual ImageFolder way.

    python benchmarks/loader_throughput.py [PACKED.h5] [--idx DIR | --synthetic N,C,H,W]
        [--batch-size 64] [--batches N] [--shuffle-buffer 16384] [--workers 0 2] [--threads T]

Images: a packed .h5 (default data/packed/fashion-mnist.h5 when present), the train IDX files of
`--idx DIR` (e.g. /usr/share/datasets/fashion-mnist), or a synthetic set (`--synthetic`, also
the fallback: 20000,3,64,64 of smooth random patterns), packed to a temporary .h5 in the
pipeline's layout (1024-row chunks, gzip 4 + shuffle). Methods, on the same images:
  (a) in memory: the split as one uint8 tensor on the device, a batch is an index into it;
  (b) streaming: the same file read window by window (forced with memory_budget_bytes=0);
  (c) ImageFolder: the images written once as files (PNG for grayscale: lossless; JPEG quality
      95 for colour: lossy, as PyTorch-GAN's CelebA), read by ImageFolder + Resize/ToTensor/
      Normalize and a DataLoader(shuffle=True), once per --workers value.
Every method first runs --warmup batches (worker start-up, caches), then is timed --repeats times,
each from a fresh iterator to its last batch: the time covers the first window read, or the
workers' first batches, but not the in-memory load to the device (a once-per-run cost, printed
apart). The table gives the median and the best of the repeats: on a shared machine the best is
the one least disturbed by other processes.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from common import idx_train_split, pack, sync
from genlab.training.data import TrainData, open_train_data
from genlab.device import resolve_device

DEFAULT_PACKED = Path("data/packed/fashion-mnist.h5")
DEFAULT_SYNTHETIC = (20_000, 3, 64, 64)
JPEG_QUALITY = 95

Batches = Callable[[], Iterator[torch.Tensor]]


def main() -> None:
    args = _parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="loader-bench-") as tmp:
        h5_path, source = _packed_file(args, Path(tmp))
        open_data = partial(open_train_data, h5_path, device=device, shuffle_buffer=args.shuffle_buffer)
        start = time.perf_counter()
        memory = open_data(memory_budget_bytes=1 << 62)
        load_s = time.perf_counter() - start
        stream = open_data(memory_budget_bytes=0)
        n, (c, h, w) = memory.n, memory.image_shape
        batches = args.batches or n // args.batch_size
        if max(batches, args.warmup) * args.batch_size > n:
            raise SystemExit(f"{max(batches, args.warmup)} batches of {args.batch_size} exceed one epoch of {n} images")

        start = time.perf_counter()
        folder, kind = _write_image_folder(memory, Path(tmp) / "folder")
        write_s = time.perf_counter() - start
        _print_header(args, device, source, memory, h5_path, batches, load_s, kind, folder, write_s)

        gen = torch.Generator().manual_seed(0)
        methods: dict[str, Batches] = {
            "(a) in memory": partial(_train_data_batches, memory, gen, args.batch_size, batches),
            "(b) streaming": partial(_train_data_batches, stream, gen, args.batch_size, batches),
        }
        for workers in args.workers:
            loader = _image_folder_loader(folder, c, (h, w), args.batch_size, workers, device)
            methods[f"(c) ImageFolder {kind}, {workers} workers"] = partial(_loader_batches, loader, device)
        rates = {name: _rates(make, batches, args.warmup, args.repeats, args.batch_size, device)
                 for name, make in methods.items()}
    _print_table(rates, args.workers, kind)
    print(f"load average after: {_load()}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packed", nargs="?", type=Path, help=f"a packed .h5 (default: {DEFAULT_PACKED} if present)")
    parser.add_argument("--idx", type=Path, help="a directory holding train-images-idx3-ubyte[.gz] (+ labels)")
    parser.add_argument("--synthetic", type=lambda s: tuple(int(v) for v in s.split(",")), metavar="N,C,H,W")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=0, help="timed batches per method (default: one epoch)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shuffle-buffer", type=int, default=16_384)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's); on a loaded "
                        "machine 1 avoids OpenMP stalls when another process holds a core")
    return parser.parse_args()


# --------------------------------------------------------------------------- the images
def _packed_file(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """The .h5 to read, and a line saying where its images came from."""
    if args.packed:
        return args.packed, str(args.packed)
    if args.idx:
        images, labels = idx_train_split(args.idx)
        return pack(tmp / "idx.h5", images, labels), f"{args.idx} (train IDX files, packed here)"
    if args.synthetic is None and DEFAULT_PACKED.exists():
        return DEFAULT_PACKED, str(DEFAULT_PACKED)
    shape = args.synthetic or DEFAULT_SYNTHETIC
    return pack(tmp / "synthetic.h5", _synthetic(shape), None), f"synthetic {shape} (smooth random patterns)"


def _synthetic(shape: tuple[int, int, int, int]) -> np.ndarray:
    """Smooth random patterns (bilinear upsampling of 8x8 noise, plus grain): compressible like photos,
    unlike white noise, so JPEG sizes and decode times are realistic."""
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(0)
    out = np.empty(shape, dtype=np.uint8)
    for start in range(0, n, 1000):
        rows = min(1000, n - start)
        base = torch.nn.functional.interpolate(torch.rand(rows, c, 8, 8, generator=gen) * 255, size=(h, w),
                                               mode="bilinear", align_corners=False)
        grain = torch.randn(rows, c, h, w, generator=gen) * 8
        out[start:start + rows] = (base + grain).clamp(0, 255).to(torch.uint8).numpy()
    return out


def _write_image_folder(data: TrainData, root: Path) -> tuple[Path, str]:
    """The images as one file each in ImageFolder's layout (one folder per label, or one folder)."""
    images, labels = data.head()
    images = images.cpu().numpy().transpose(0, 2, 3, 1)
    labels = np.zeros(len(images), dtype=np.int64) if labels is None else labels.cpu().numpy()
    grayscale = images.shape[-1] == 1
    suffix, options = (".png", {}) if grayscale else (".jpg", {"quality": JPEG_QUALITY})
    for label in np.unique(labels):
        (root / f"{label:03d}").mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image[..., 0] if grayscale else image).save(root / f"{label:03d}" / f"{i:07d}{suffix}",
                                                                    **options)
    return root, "PNG" if grayscale else f"JPEG q{JPEG_QUALITY}"


# --------------------------------------------------------------------------- the methods
def _to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1], as the models' `to_input` does."""
    return images.float() / 255.0 * 2 - 1


def _train_data_batches(data: TrainData, gen: torch.Generator, batch_size: int, steps: int) -> Iterator[torch.Tensor]:
    with contextlib.closing(data.batches(data.epoch_order(gen), batch_size, steps)) as it:
        for images, _ in it:
            yield _to_model_input(images)


def _open_grayscale(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def _image_folder_loader(root: Path, channels: int, size: tuple[int, int], batch_size: int, workers: int,
                         device: torch.device) -> DataLoader:
    """PyTorch-GAN's usual input pipeline (grayscale files opened as one channel, not ImageFolder's RGB)."""
    transform = transforms.Compose([transforms.Resize(size), transforms.ToTensor(),
                                    transforms.Normalize([0.5] * channels, [0.5] * channels)])
    dataset = datasets.ImageFolder(str(root), transform=transform,
                                   **({"loader": _open_grayscale} if channels == 1 else {}))
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0)


def _loader_batches(loader: DataLoader, device: torch.device) -> Iterator[torch.Tensor]:
    for images, _ in loader:
        yield images.to(device, non_blocking=True)


def _rates(make: Batches, batches: int, warmup: int, repeats: int, batch_size: int,
           device: torch.device) -> list[float]:
    """img/s of `batches` batches from each of `repeats` fresh iterators, after `warmup` batches."""
    _drain(make(), warmup, device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        _drain(make(), batches, device)
        rates.append(batches * batch_size / (time.perf_counter() - start))
    return rates


def _drain(it: Iterator[torch.Tensor], count: int, device: torch.device) -> None:
    with contextlib.closing(it):
        for _ in islice(it, count):
            pass
    sync(device)


# --------------------------------------------------------------------------- the report
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _print_header(args: argparse.Namespace, device: torch.device, source: str, data: TrainData, h5_path: Path,
                  batches: int, load_s: float, kind: str, folder: Path, write_s: float) -> None:
    n, (c, h, w) = data.n, data.image_shape
    print(f"CPU: {_cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"load average before: {_load()}")
    print(f"images: {source}: {n} x {c}x{h}x{w} uint8 ({n * c * h * w / 1e6:.0f} MB), "
          f"{'labelled' if data.labelled else 'unlabelled'}; .h5 {_size_mb(h5_path):.0f} MB")
    shuffle = "full permutation" if n <= args.shuffle_buffer else "block shuffle"
    print(f"batch {args.batch_size}, {batches} timed batches per method after {args.warmup} warm-up, "
          f"{args.repeats} repeats; shuffle_buffer {args.shuffle_buffer} ({shuffle})")
    print(f"in-memory load to {device}: {load_s:.2f} s (once per run, not in the rates); "
          f"ImageFolder files: {kind}, {_size_mb(folder):.0f} MB, written in {write_s:.0f} s")


def _print_table(rates: dict[str, list[float]], workers: list[int], kind: str) -> None:
    """Median and best img/s of each method; (a) and (b) also as multiples of each (c), median to median."""
    medians = {name: statistics.median(r) for name, r in rates.items()}
    baselines = [medians[f"(c) ImageFolder {kind}, {w} workers"] for w in workers]
    ratio_heads = "".join(f" | x (c) {w} workers" for w in workers)
    print(f"\n| method | img/s median | img/s best{ratio_heads} |\n|---|---:|---:" + "|---:" * len(workers) + "|")
    for name, median in medians.items():
        ratios = "".join(f" | {median / base:.1f}" for base in baselines) if name[:3] in ("(a)", "(b)") \
            else " |" * len(workers)
        print(f"| {name} | {median:,.0f} | {max(rates[name]):,.0f}{ratios} |")


if __name__ == "__main__":
    main()
