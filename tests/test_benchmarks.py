"""The benchmarks run (smoke mode: a few steps); their speed is measured by hand, never asserted here."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from projects import MIRROR, REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`")]


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


def test_gpu_check_smoke_runs_every_check_on_the_cpu_without_mlflow_or_dvc(tmp_path):
    """benchmarks/gpu_check.py as the GPU machine runs it (no MLflow, no DVC: both made unimportable here, in
    its stage subprocesses too), tiny and on the CPU: every row passes, and the table names each check."""
    import json
    import os

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Missing(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('mlflow', 'dvc'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Missing())\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    rows_path = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--smoke", "--raw", str(MIRROR),
                           "--json", str(rows_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {row["check"]: row for row in json.loads(rows_path.read_text())}
    for check in ("evaluator", "train dcgan fp32", "train dualgan fp32", "train pix2pix fp32", "resume dcgan",
                  "resume wgan", "resume dualgan", "repeat wgan", "inception cpu torch vs cpu onnxruntime",
                  "paper-scale dcgan"):
        assert rows[check]["status"] == "ok", rows[check]
    assert "2 epochs of 7 steps" in rows["resume wgan"]["detail"]  # not a multiple of the 5 critic steps
    assert rows["nproc 2"]["status"] == "skip"
    assert "| resume wgan" in proc.stdout and rows["total"]["status"] == "ok"


def test_gpu_check_fails_loudly_when_a_check_fails(tmp_path):
    """A failed row makes the exit status 1, is named in the total, and the table still prints (here: no
    Fashion-MNIST where --raw points, so the workspace cannot be made and no other check runs)."""
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--smoke", "--raw",
                           str(tmp_path / "nowhere")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert re.search(r"^\| workspace +\| FAIL +\| FileNotFoundError", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\| total +\| FAIL +\| .*1 failed: workspace", proc.stdout, re.M), proc.stdout


def test_repro_timeline_times_each_stage_to_the_next_and_sums_them_by_kind(tmp_path):
    log = tmp_path / "repro.log"
    log.write_text("100.000 START\n100.500 Running stage 'download@d':\n104.000 > python pipeline/download.py\n"
                   "110.500 Running stage 'train@gan':\n150.500 Running stage 'train@vae':\n"
                   "170.500 Running stage 'report':\n175.000 Updating lock file 'dvc.lock'\n180.000 END 0\n")
    out = run_benchmark("repro_timeline.py", "--read", str(log))
    assert "4 stages, 1.3 min wall" in out
    assert re.search(r"^train\s+2\s+60\s+30\.0\s+75%$", out, re.M), out
    assert re.search(r"^download\s+1\s+10\s+10\.0\s+12%$", out, re.M) and re.search(r"^report\s+1\s+10\s", out, re.M)
    assert out.index("train@gan") < out.index("train@vae")  # slowest first


def test_optimizer_ab_times_both_optimizer_kinds_and_prints_their_ratio():
    out = run_benchmark("optimizer_ab.py", "gan", "wgan", "--steps", "3", "--rounds", "2", "--batch-size", "16")
    rows = dict(re.findall(r"^(\w+)\s+(Adam|RMSprop) ", out, re.M))
    assert rows == {"gan": "Adam", "wgan": "RMSprop"}, out
    for ours, theirs, ratio in re.findall(r"genlab\s+([\d.]+) ms, per-tensor\s+([\d.]+) ms, ratio ([\d.]+)x", out):
        assert float(ratio) == pytest.approx(float(theirs) / float(ours), rel=0.05)  # of the rounded times
    bad = subprocess.run([sys.executable, "benchmarks/optimizer_ab.py", "pix2pix"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "image-to-image model" in bad.stderr

