"""`genlab generate` and the images it reads and writes, on models trained here on a tiny packed dataset (the
command runs in a subprocess, as users run it). `genlab score` needs a pipeline's cached features: test_e2e.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from genlab.config import parse_params
from genlab.sampling.sample import draw_samples
from genlab.serving.images import ImagesError, read_images, write_folder
from genlab.models.files import load_model
from genlab.training.loop import train_model
from miniatures import packed_bars

pytestmark = pytest.mark.slow  # whole scripts and processes: left out of `make test-fast`


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A directory laid out as a pipeline leaves it: models/<m>/seed-0 of an unconditional, a conditional and an
    image-to-image model, and the packed files they trained on."""
    root = tmp_path_factory.mktemp("project")
    packed = packed_bars(tmp_path_factory.mktemp("raw"), root / "fashion-mnist.h5", (128, 32), noise=40, rows=(4, 7),
                         cols=(4, 24), value=255)
    models = {"dcgan": {"type": "dcgan", "epochs": 1, "batch_size": 16, "width": 8, "latent_dim": 8},
              "cgan": {"type": "cgan", "epochs": 1, "batch_size": 16}}
    params = parse_params({"seed": 0, "train": {"device": "cpu", "precision": "fp32", "best_metric": "none"},
                           "models": models})
    os.environ["GENLAB_TRACKING"] = "off"
    try:
        for name in models:
            train_model(params, name, packed, root / "models" / name / "seed-0", root / "plots" / f"{name}.csv")
    finally:
        del os.environ["GENLAB_TRACKING"]
    return root


def generate(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "genlab", "generate", *args], cwd=project, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "GENLAB_TRACKING": "off"})
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_the_same_seed_gives_the_same_bytes_and_the_sample_stages_images(project, tmp_path):
    generate(project, "dcgan", "-o", str(tmp_path / "a.h5"), "--n", "40", "--seed", "3", "--batch-size", "16")
    generate(project, "models/dcgan/seed-0", "-o", str(tmp_path / "b.h5"), "--n", "40", "--seed", "3",
             "--batch-size", "16")
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert (a["images"][()] == b["images"][()]).all() and a["images"].shape == (40, 1, 28, 28)
        images = a["images"][()]
    model = load_model(project / "models" / "dcgan" / "seed-0")
    assert (draw_samples(model, 40, 16, 3).images.numpy() == images).all()  # what evaluate@ draws at seed 3
    generate(project, "dcgan", "-o", str(tmp_path / "c.h5"), "--n", "40", "--seed", "4", "--batch-size", "16")
    with h5py.File(tmp_path / "c.h5") as c:
        assert not (c["images"][()] == images).all()
    for name in ("x.png", "y.png"):
        generate(project, "dcgan", "-o", str(tmp_path / name), "--n", "16", "--seed", "3")
    assert (tmp_path / "x.png").read_bytes() == (tmp_path / "y.png").read_bytes()
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_a_folder_of_pngs_reads_back_as_the_drawn_images(project, tmp_path):
    generate(project, "dcgan", "-o", str(tmp_path / "h.h5"), "--n", "5", "--seed", "1")
    generate(project, "dcgan", "-o", str(tmp_path / "pngs"), "--n", "5", "--seed", "1")
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    with h5py.File(tmp_path / "h.h5") as f:
        assert (read_images(tmp_path / "pngs") == f["images"][()]).all()
    refused = generate(project, "dcgan", "-o", str(tmp_path / "pngs"), "--n", "5", check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr  # an existing folder is never mixed into


def test_a_conditional_model_draws_the_label_asked_for(project, tmp_path):
    generate(project, "cgan", "-o", str(tmp_path / "l.h5"), "--n", "6", "--label", "7")
    with h5py.File(tmp_path / "l.h5") as f:
        assert f["labels"][()].tolist() == [7] * 6
    generate(project, "cgan", "-o", str(tmp_path / "b.h5"), "--n", "20")
    with h5py.File(tmp_path / "b.h5") as f:
        assert sorted(set(f["labels"][()].tolist())) == list(range(10))  # balanced by default


@pytest.mark.parametrize("args, says", [
    (("dcgan", "--label", "2"), "is unconditional: it takes no --label"),
    (("cgan", "--label", "10"), "--label 10: cgan has classes 0-9"),
    (("nosuch",), "nosuch: no trained model; MODEL is a models/<m> directory"),
    (("dcgan", "--input", "missing-folder"), "missing-folder: no such file or folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(project, tmp_path, args, says):
    proc = generate(project, *args, "-o", str(tmp_path / "out.h5"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {proc.stderr.strip()[7:]}"] and says in proc.stderr
    assert not (tmp_path / "out.h5").exists()


def test_a_tampered_model_file_is_refused(project, tmp_path):
    import shutil

    bad = tmp_path / "models" / "dcgan" / "seed-0"
    shutil.copytree(project / "models" / "dcgan" / "seed-0", bad)
    data = bytearray((bad / "model.pt").read_bytes())
    (bad / "model.pt").write_bytes(bytes(data[: len(data) // 2]))
    proc = generate(tmp_path, "dcgan", "-o", str(tmp_path / "out.h5"), check=False)
    assert proc.returncode == 1 and "model.pt" in proc.stderr and "Traceback" not in proc.stderr  # as a stage
    assert not (tmp_path / "out.h5").exists()


def test_images_are_read_as_they_are_or_refused(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 3, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "nchw.npz", images=images)
    np.savez(tmp_path / "nhwc.npz", images.transpose(0, 2, 3, 1))
    assert (read_images(tmp_path / "nchw.npz") == images).all() and (read_images(tmp_path / "nhwc.npz") == images).all()
    write_folder(tmp_path / "rgb", images)
    assert (read_images(tmp_path / "rgb") == images).all()
    np.savez(tmp_path / "float.npz", images=images.astype(np.float32))
    with pytest.raises(ImagesError, match="float32; give uint8"):
        read_images(tmp_path / "float.npz")
    from PIL import Image

    Image.new("RGBA", (5, 6)).save(tmp_path / "rgb" / "zzz.png")
    with pytest.raises(ImagesError, match="zzz.png: image mode RGBA"):
        read_images(tmp_path / "rgb")
    (tmp_path / "rgb" / "zzz.png").unlink()
    Image.new("RGB", (7, 6)).save(tmp_path / "rgb" / "zzz.png")
    with pytest.raises(ImagesError, match="zzz.png: 6x7 with 3 channels, but 000000.png is 6x5"):
        read_images(tmp_path / "rgb")
