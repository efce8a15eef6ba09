"""Time to quality: the training wall time genlab needs to reach the FID that PyTorch-GAN's dcgan.py
reaches after one epoch of Fashion-MNIST, on the same machine, scored with the same protocol.

    python benchmarks/time_to_quality.py [--model dcgan] [--eval-every 50] [--max-steps 3000]
        [--real data/features/fashion-mnist-test-n500.h5] [--idx /usr/share/datasets/fashion-mnist]

The anchor is dcgan.py of the PyTorch-GAN catalogue as published (32x32 images, latent 100, Upsample +
3x3 conv generator with BatchNorm(eps 0.8), four-block strided discriminator with Dropout2d and a
sigmoid, BCE, Adam 2e-4 (0.5, 0.999), batch 64, N(0, 0.02) init), trained for one epoch (937 batches)
the way the script trains: torchvision's FashionMNIST with Resize(32) + ToTensor + Normalize, a
shuffling DataLoader, both losses read with `.item()` and printed every step. genlab trains the
params.yaml model (default dcgan) with its own loop and is scored every `--eval-every` steps until it
reaches the anchor's FID; the clock stops while it is scored. Protocol, as the evaluate stage's: 250
samples (the anchor's resized 32 -> 28 with antialiasing, the test images' size) against the cached
Inception features of 500 real test images (`dvc repro real_features@fashion-mnist` makes them).

Prints both FIDs and times and their ratio. `--smoke` trains each a few steps (for the test suite).
Name the CPU (lscpu) with the numbers.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from common import (FASHION_MNIST_IDX, anchor_loader, anchor_steps, fresh_model, genlab_steps, idx_train_split,
                    in_memory_train_data)
from genlab.config import load_params
from genlab.data.sources import DATASETS
from genlab.metrics.features import extract_features, load_features
from genlab.metrics.fid import compute_fid_kid
from genlab.grid import to_uint8
from genlab.sampling.sample import draw_samples
from genlab.device import resolve_device

N_SAMPLES = 250
ANCHOR_SIDE, ANCHOR_LATENT = 32, 100


class AnchorGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.init_size = ANCHOR_SIDE // 4
        self.l1 = nn.Linear(ANCHOR_LATENT, 128 * self.init_size ** 2)
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128), nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, stride=1, padding=1), nn.BatchNorm2d(128, 0.8), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, stride=1, padding=1), nn.BatchNorm2d(64, 0.8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 1, 3, stride=1, padding=1), nn.Tanh())

    def forward(self, z):
        return self.conv_blocks(self.l1(z).view(len(z), 128, self.init_size, self.init_size))


class AnchorDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin, cout, bn=True):
            layers = [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            return layers + ([nn.BatchNorm2d(cout, 0.8)] if bn else [])

        self.model = nn.Sequential(*block(1, 16, bn=False), *block(16, 32), *block(32, 64), *block(64, 128))
        self.adv_layer = nn.Sequential(nn.Linear(128 * (ANCHOR_SIDE // 2 ** 4) ** 2, 1), nn.Sigmoid())

    def forward(self, img):
        return self.adv_layer(self.model(img).flatten(1))


def _init_normal(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.constant_(m.bias, 0.0)


class AnchorDCGAN:
    """dcgan.py's networks, optimizers and step, behind the `training_step` the benchmarks' loops call."""

    def __init__(self, device: torch.device):
        torch.manual_seed(0)
        self.device = device
        self.G, self.D = AnchorGenerator().to(device), AnchorDiscriminator().to(device)
        self.G.apply(_init_normal)
        self.D.apply(_init_normal)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.bce = nn.BCELoss()

    def training_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        valid = torch.ones(len(real), 1, device=self.device)
        fake = torch.zeros(len(real), 1, device=self.device)
        self.opt_g.zero_grad()
        gen = self.G(torch.randn(len(real), ANCHOR_LATENT, device=self.device))
        g_loss = self.bce(self.D(gen), valid)
        g_loss.backward()
        self.opt_g.step()
        self.opt_d.zero_grad()
        d_loss = (self.bce(self.D(real), valid) + self.bce(self.D(gen.detach()), fake)) / 2
        d_loss.backward()
        self.opt_d.step()
        return {"loss_d": d_loss, "loss_g": g_loss}

    @torch.no_grad()
    def samples(self, n: int) -> torch.Tensor:
        """n uint8 samples at the test images' 28x28 (bilinear, antialiased from 32x32)."""
        self.G.eval()
        z = torch.randn(n, ANCHOR_LATENT, generator=torch.Generator().manual_seed(0)).to(self.device)
        images = F.interpolate((self.G(z) + 1) / 2, size=(28, 28), mode="bilinear", antialias=True)
        self.G.train()
        return to_uint8(images.clamp(0, 1)).cpu()


def fid_of(images_uint8: torch.Tensor, real) -> float:
    return compute_fid_kid(extract_features(images_uint8, batch_size=25, desc="features"), real,
                           kid_subset_size=len(images_uint8))["fid"]


def main() -> None:
    args = _parse_args()
    params = load_params()
    spec = params.model(args.model)
    device = resolve_device(args.device or params.train["device"])
    real, _ = load_features(args.real)
    anchor_n = 3 if args.smoke else 60_000 // 64  # one epoch of 64-image batches
    n = 10 if args.smoke else N_SAMPLES
    with tempfile.TemporaryDirectory(prefix="ttq-bench-") as tmp:
        images, labels = idx_train_split(args.idx)
        loader = anchor_loader(args.idx, Path(tmp), (ANCHOR_SIDE, ANCHOR_SIDE), 64, 0)
        anchor = AnchorDCGAN(device)
        start = time.perf_counter()
        for x, _, report in tqdm(anchor_steps(loader, device, anchor_n), total=anchor_n,
                                 desc="PyTorch-GAN dcgan.py", unit="step", dynamic_ncols=True):
            report(anchor.training_step(x))
        anchor_s = time.perf_counter() - start
        target = fid_of(anchor.samples(n), real)
        print(f"PyTorch-GAN dcgan.py: {anchor_n} steps in {anchor_s:.1f} s, FID {target:.1f}", flush=True)

        data = in_memory_train_data(images, labels, Path(tmp), device)
        model, optimizers = fresh_model(spec, images.shape[1:], DATASETS["fashion-mnist"].num_classes, device)
        eval_every, max_steps = (2, 2) if args.smoke else (args.eval_every, args.max_steps)
        trained_s, fid, best, step = 0.0, float("inf"), float("inf"), 0
        start = time.perf_counter()
        for x, y, keep in genlab_steps(data, spec.batch_size, max_steps, params.train["log_every"]):
            keep(model.training_step(model.to_input(x), y, optimizers, step))
            step += 1
            if step % eval_every == 0 or step == max_steps:
                trained_s += time.perf_counter() - start
                model.eval()
                fid = fid_of(draw_samples(model, n, n, 0).images, real)
                best = min(best, fid)
                model.train()
                print(f"genlab {spec.name}: step {step}, {trained_s:.1f} s of training, FID {fid:.1f}", flush=True)
                if fid <= target:
                    break
                start = time.perf_counter()
    reached = fid <= target
    print(f"time to FID {target:.1f}: PyTorch-GAN {anchor_s:.1f} s, genlab "
          + (f"{trained_s:.1f} s ({anchor_s / trained_s:.1f}x)" if reached
             else f"not reached in {step} steps ({trained_s:.1f} s; best FID {best:.1f})"))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dcgan", help="a key of params.yaml's models (default: dcgan)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--real", type=Path, default=Path("data/features/fashion-mnist-test-n500.h5"))
    parser.add_argument("--idx", type=Path, default=FASHION_MNIST_IDX)
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: params.yaml's)")
    parser.add_argument("--smoke", action="store_true", help="a few steps of each (for the tests)")
    return parser.parse_args()


if __name__ == "__main__":
    main()
