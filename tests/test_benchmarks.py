"""The benchmarks run (smoke mode: a few steps); their speed is measured by hand, never asserted here."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from projects import MIRROR, REPO

pytestmark = pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`")


def run_benchmark(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_anchor_loop_trains_one_network_both_ways_and_prints_the_ratio():
    out = run_benchmark("anchor_loop.py", "--smoke", "--model", "dcgan")
    assert "model=dcgan type=dcgan batch=64" in out and "steps=2" in out
    rates = dict(re.findall(r"^(genlab|PyTorch-GAN)\s+([\d.]+) img/s", out, re.M))
    assert set(rates) == {"genlab", "PyTorch-GAN"} and all(float(v) > 0 for v in rates.values())
    ratio = float(re.search(r"ratio genlab / PyTorch-GAN: ([\d.]+)x", out).group(1))
    assert ratio == pytest.approx(float(rates["genlab"]) / float(rates["PyTorch-GAN"]), rel=0.02)


def test_time_to_quality_scores_both_and_reports_the_times(tmp_path):
    import numpy as np

    from genlab.data.idx import read_idx
    from genlab.metrics.features import extract_features, save_features

    test_images = read_idx(MIRROR / "t10k-images-idx3-ubyte.gz")[:20, None]
    real = tmp_path / "real.h5"
    save_features(real, extract_features(np.ascontiguousarray(test_images), batch_size=20),
                  {"extractor": "inception-v3-tf-fidhelper", "N": 20})
    out = run_benchmark("time_to_quality.py", "--smoke", "--real", str(real))
    anchor = re.search(r"PyTorch-GAN dcgan.py: 3 steps in ([\d.]+) s, FID ([\d.]+)", out)
    assert anchor and float(anchor.group(2)) > 0, out
    assert re.search(r"genlab dcgan: step 2, [\d.]+ s of training, FID [\d.]+", out), out
    assert re.search(r"time to FID [\d.]+: PyTorch-GAN [\d.]+ s, genlab ", out), out
