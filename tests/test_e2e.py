"""End to end: the real `dvc repro` on tiny params in a temporary git repo, read back from MLflow.

Two datasets in one pipeline: Fashion-MNIST, from the Debian package dataset-fashion-mnist
(installed by .ci/run) used as the download stage's local mirror, and a miniature LFW (64x64
RGB faces after its centre crop) downloaded over HTTP from a local server, as lfw.tgz in the real
archive layout with its checksum injected through params. One model of each kind of path through the
stages is trained, sampled and evaluated (module-scoped fixture): unconditional and conditional,
adversarial and autoencoding, critic with penalty, semi-supervised classifier, one image-to-image model
per task kind, a model on the faces. Every other registered type shares those paths; each type's steps,
sampling and shapes are tested in test_models.py and test_translation.py, in-process. The tests then
check the outputs, the MLflow runs, DVC's skipping and its selective re-runs.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
import yaml

from genlab.io import read_record
from genlab.models import MODEL_TYPES
from browser import chromium, experiment_page, fetch, mlflow_ui, rendered_dom, screenshot, visible_text
from httpserver import FileServer
from miniatures import lfw_archive
from projects import BIN, MIRROR, env_for, git, make_project, ran_stages, tiny_params
from projects import dvc as project_dvc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`"),
]

# Tiny settings per model: enough steps for several logged points, seconds of CPU each.
TINY_MODEL = {"epochs": 2, "batch_size": 32}
TINY_OVERRIDES = {"width": 8}  # conv models
CONV_TYPES = {name for name, cls in MODEL_TYPES.items() if cls.hparam_fields.get("arch") and cls.hparam_fields["arch"].default == "conv"}
# each stage costs seconds of start-up: a type per path, not every type (see the module's docstring)
NOISE_TYPES = ["cgan", "dcgan", "gan", "sgan", "vae", "wgan_gp"]
# Image-to-image: four tasks derived from Fashion-MNIST, one type on each (pix2pix on the paired
# inpainting task to keep the stages few; the default params give it edges).
TASKS = {"inpaint": {"dataset": "fashion-mnist", "kind": "inpainting", "mask": 10},
         "edges-unpaired": {"dataset": "fashion-mnist", "kind": "edges", "paired": False},
         "sr4": {"dataset": "fashion-mnist", "kind": "super_resolution", "factor": 4},
         "fm-m": {"dataset": "fashion-mnist", "kind": "blend"}}
TRANSLATION = {"pix2pix": "inpaint", "cyclegan": "edges-unpaired", "srgan": "sr4", "pixelda": "fm-m"}
TINY_TRANSLATION = {"epochs": 2, "batch_size": 16, "steps_per_epoch": 4, "width": 8}
PER_TASK = ("task", "task_reference")


FACES = {"dcgan_faces": {"type": "dcgan", "dataset": "lfw", **TINY_MODEL, **TINY_OVERRIDES}}
DATASETS = ("fashion-mnist", "lfw")
SEEDED = ("gan", "dcgan")  # trained with seeds [0, 1]; every other entry with the default [0]


def seeds_of(name: str) -> list[int]:
    return [0, 1] if name in SEEDED else [0]


def seed_run(repo: Path, name: str, seed: int = 0) -> str:
    """The MLflow run id of one training seed of a model (its child run)."""
    return json.loads((repo / "models" / name / f"seed-{seed}" / "mlflow_run.json").read_text())["run_id"]


def seed_record(repo: Path, name: str, seed: int = 0) -> dict:
    return read_record(repo / "metrics" / name / f"seed-{seed}.json")
PER_DATASET = ("download", "pack", "evaluator", "real_features", "reference")


def e2e_params(faces_url: str, faces_sha256: str) -> dict:
    models = {}
    for name in NOISE_TYPES:
        entry = {"type": name, "dataset": "fashion-mnist", **TINY_MODEL}
        if name in CONV_TYPES:
            entry.update(TINY_OVERRIDES)
        models[name] = entry
    for name, task in TRANSLATION.items():
        blocks = {"residual_blocks": 1} if "residual_blocks" in MODEL_TYPES[name].hparam_fields else {}
        models[name] = {"type": name, "dataset": task, **TINY_TRANSLATION, **blocks}
    models.update(FACES)
    for name in SEEDED:  # two training seeds each: parent and child runs, spread, tie groups
        models[name]["seeds"] = [0, 1]
    params = tiny_params(models)
    params["tasks"] = TASKS
    params["datasets"]["lfw"] = {"download": {"source": faces_url, "checksums": {"archive": f"sha256:{faces_sha256}"}},
                                 "pack": {"side": 64, "crop": 90, "test_fraction": 0.3}}
    return params


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    # A cache of the project's own (downloads, the ONNX graph): the faces must come over HTTP, not
    # from an earlier run's download cache.
    return project_dvc(repo, *args, GENLAB_CACHE=str(repo.with_name(f"{repo.name}-genlab-cache")))


@pytest.fixture(scope="module")
def faces_server():
    """A miniature lfw.tgz (40 people, 2 photos each, 250x250 JPEGs) served over HTTP."""
    archive = lfw_archive(people=40, images_per_person=2)
    with FileServer({"/lfw/lfw.tgz": archive}) as server:
        yield {"url": f"{server.url}/lfw", "sha256": hashlib.sha256(archive).hexdigest(), "server": server}


@pytest.fixture(scope="module")
def project(tmp_path_factory, faces_server) -> dict:
    repo = make_project(tmp_path_factory.mktemp("project") / "repo",
                        e2e_params(faces_server["url"], faces_server["sha256"]))
    first = dvc(repo, "repro")
    return {"repo": repo, "first": first.stdout + first.stderr}


def mlflow_client(repo: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def model_stages(*names: str) -> set[str]:
    return {f"{stage}@{name}" for name in names for stage in ("train", "evaluate")}


def test_every_stage_ran_once_per_dataset_and_model(project, faces_server):
    expected = {f"{stage}@{d}" for stage in PER_DATASET for d in DATASETS} | {"report"}
    expected |= {f"{stage}@{t}" for stage in PER_TASK for t in TASKS}
    expected |= model_stages(*NOISE_TYPES, *TRANSLATION, *FACES)
    assert ran_stages(project["first"]) == expected
    lock = yaml.safe_load((project["repo"] / "dvc.lock").read_text())
    assert set(lock["stages"]) == expected
    assert faces_server["server"].paths().count("/lfw/lfw.tgz") == 1  # downloaded once, over HTTP


def test_faces_are_packed_as_rgb_64_and_their_models_scored_without_a_classifier(project):
    import h5py

    repo = project["repo"]
    with h5py.File(repo / "data" / "packed" / "lfw.h5") as f:
        assert f["train/images"].shape[1:] == (3, 64, 64) and "labels" not in f["train"]
        assert json.loads(f.attrs["preprocessing"])["crop"] == 90
    for name in FACES:
        record = seed_record(repo, name)
        assert math.isfinite(record["fid"]["value"]) and record["fid"]["real_split"] == "lfw/test", name
        assert record["classifier_fid"]["value"] is None and "no class labels" in record["classifier_fid"]["reason"]
        with h5py.File(repo / "samples" / name / "seed-0.h5") as f:
            assert f["images"].shape == (24, 3, 64, 64)
    evaluator = read_record(repo / "metrics" / "evaluator-lfw.json")
    assert evaluator["test_accuracy"] is None and "no class labels" in evaluator["reason"]


def test_one_mlflow_experiment_per_dataset(project):
    client = mlflow_client(project["repo"])
    by_task = {task: [m for m, t in TRANSLATION.items() if t == task] for task in TASKS}
    for dataset, names in (("fashion-mnist", NOISE_TYPES), ("lfw", list(FACES)), *by_task.items()):
        experiment = client.get_experiment_by_name(dataset)
        runs = client.search_runs([experiment.experiment_id])
        expected = [*names, *(f"{n} seed {s}" for n in names for s in seeds_of(n))]  # parents and their seeds
        assert sorted(r.info.run_name for r in runs) == sorted(expected), dataset
        assert all(r.info.status == "FINISHED" and r.data.params["model.dataset"] == dataset for r in runs)


def test_each_model_is_a_parent_run_with_one_child_per_seed_holding_the_spread(project):
    repo = project["repo"]
    client = mlflow_client(repo)
    experiment = client.get_experiment_by_name("fashion-mnist").experiment_id
    for name in SEEDED:
        parent_id = json.loads((repo / "models" / name / "mlflow_run.json").read_text())["run_id"]
        children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
        assert sorted(r.data.tags["genlab.seed"] for r in children) == ["0", "1"], name
        assert {r.info.run_id for r in children} == {seed_run(repo, name, s) for s in (0, 1)}
        assert len({r.data.metrics["classifier_kid"] for r in children}) == 2  # two seeds, two models
        parent = client.get_run(parent_id)
        values = [r.data.metrics["classifier_kid"] for r in children]
        assert parent.data.metrics["classifier_kid.mean"] == pytest.approx(sum(values) / 2)
        assert parent.data.metrics["classifier_kid.std"] > 0 and parent.data.metrics["seeds"] == 2
        assert parent.data.tags["genlab.role"] == "parent"
        # the model's metrics file: each number over the seeds; the spread figure logged to the parent
        numbers = json.loads((repo / "metrics" / f"{name}.json").read_text())
        assert numbers["mean"]["classifier_kid"] == parent.data.metrics["classifier_kid.mean"] and numbers["n"] == 2
        report = [a.path for a in client.list_artifacts(parent_id, "report")]
        assert "report/spread-fashion-mnist.png" in report, report
    # the Inception cross-check on the first seed only; the classifier-space rank key on every seed
    assert seed_record(repo, "gan", 1)["fid"].get("value") is None
    assert "eval.inception_seeds" in seed_record(repo, "gan", 1)["fid"]["reason"]
    assert math.isfinite(seed_record(repo, "gan", 1)["classifier_kid"]["mean"])


def test_leaderboard_shows_the_spread_over_seeds_rank_intervals_and_tie_groups(project):
    import pandas as pd

    repo = project["repo"]
    board = pd.read_csv(repo / "reports" / "leaderboard.csv")
    fashion = board[board["dataset"] == "fashion-mnist"].set_index("model")
    assert fashion.loc["gan", "seeds"] == 2 and fashion.loc["cgan", "seeds"] == 1
    assert fashion.loc["gan", "key_std"] > 0 and fashion.loc["gan", "key_min"] <= fashion.loc["gan", "key_max"]
    models = fashion.drop(index="reference")
    assert models["group"].notna().all() and (models["rank_low"] <= models["rank"]).all()
    assert (models["rank"] <= models["rank_high"]).all()
    assert fashion.loc["reference", "seeds"] == 3  # the floor over disjoint real subsets (eval.reference_subsets)
    md = (repo / "reports" / "leaderboard.md").read_text()
    assert "| group | rank | model | type | classifier_kid" in md and "mean ± seed std (min–max)" in md
    row = next(line for line in md.splitlines() if line.startswith("|") and line.split("|")[3].strip() == "gan")
    assert " ± " in row.split("|")[5] and "–" in row.split("|")[5], row
    assert (repo / "reports" / "figures" / "spread-fashion-mnist.png").read_bytes()[:4] == b"\x89PNG"
    assert (repo / "reports" / "figures" / "compute-fashion-mnist.png").read_bytes()[:4] == b"\x89PNG"
    assert (repo / "reports" / "nearest" / "gan.png").read_bytes()[:4] == b"\x89PNG"
    faces = md.split("## lfw", 1)[1].split("## ", 1)[0]  # no labels, no classifier: ranked by Inception KID
    assert "kid_mean" in faces.split("|")[5] and "Ranked by kid_mean" in faces
    assert "nearest/gan.png" in (repo / "reports" / "index.html").read_text()


def test_metrics_files_hold_finite_fid_and_kid(project):
    from genlab.metrics.evaluate import metric_numbers

    for name in NOISE_TYPES:  # the Fashion-MNIST entries carry the types' names
        record = seed_record(project["repo"], name)
        # the DVC metrics file: the numbers alone; the protocol file: each number's protocol
        numbers = json.loads((project["repo"] / "metrics" / name / "seed-0.json").read_text())
        assert numbers == metric_numbers(record) and numbers["fid"] == record["fid"]["value"], name
        assert all(v is None or isinstance(v, (int, float)) for v in numbers.values()), numbers
        assert math.isfinite(record["fid"]["value"]) and record["fid"]["value"] > 0, name
        assert math.isfinite(record["kid"]["mean"]), name
        assert record["fid"]["n_fake"] == 12 and record["fid"]["n_real"] == 12
        assert record["classifier_kid"]["n_fake"] == 24 and math.isfinite(record["classifier_kid"]["mean"])
        assert 0 <= record["density_coverage"]["coverage"] <= 1 and record["density_coverage"]["k"] == 5
        assert 0 <= record["classifier_density_coverage"]["coverage"] <= 1
        assert math.isfinite(record["memorization"]["c_t"]) and len(record["memorization"]["nearest"]["train"]) == 16
        assert record["fid"]["extractor"] == "inception-v3-tf-fidhelper"
        assert record["fid"]["runtime"] == "onnxruntime"  # auto, fp32 on CPU
        assert len(record["fid"]["weights_sha256"]) == 64
        assert record["inception_score"]["value"] is None and record["inception_score"]["reason"]
        assert 0.0 <= record["precision_recall"]["precision"] <= 1.0 and 0.0 <= record["precision_recall"]["recall"] <= 1.0
        assert 1.0 <= record["classifier_is"]["mean"] <= 10.0
        assert math.isfinite(record["classifier_fid"]["value"])
        assert sum(record["class_histogram"]["counts"]) == 24
        conditional = MODEL_TYPES[name].conditional
        assert (record["conditional_accuracy"]["value"] is not None) == conditional, name


def test_mlflow_run_holds_params_curves_images_and_eval_metrics(project):
    repo = project["repo"]
    client = mlflow_client(repo)
    experiment = client.get_experiment_by_name("fashion-mnist")
    assert experiment is not None
    assert experiment.artifact_location == (repo / "mlartifacts" / "fashion-mnist").as_uri()
    for name in NOISE_TYPES:
        cls = MODEL_TYPES[name]
        run_id = seed_run(repo, name)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", name
        assert run.info.experiment_id == experiment.experiment_id
        params = run.data.params
        assert params["model.type"] == name and params["model.epochs"] == "2"
        assert params["data.train_limit"] == "192" and params["seed"] == "0"
        assert run.data.tags["genlab.stage"] == f"train@{name}" and "data.hash" in run.data.tags
        adversarial = hasattr(cls, "loss_name")
        if adversarial:
            assert {"loss_g", "loss_d", "real_score", "fake_score"} <= set(run.data.metrics), name
        else:
            assert "loss" in run.data.metrics and "recon" in run.data.metrics, name
        history = client.get_metric_history(run_id, "loss_d" if adversarial else "loss")
        assert len(history) >= 5 and all(math.isfinite(m.value) for m in history), name
        assert len({m.step for m in history}) == len(history)
        # evaluation landed in the same run
        metrics = json.loads((repo / "metrics" / name / "seed-0.json").read_text())
        assert run.data.metrics["fid"] == metrics["fid"]
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert {"samples", "model", "curves", "metrics", "images", "lineage"} <= artifacts, name
        assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/seed-0.png"]


def test_per_epoch_grids_are_step_indexed_images(project):
    repo = project["repo"]
    client = mlflow_client(repo)
    run_id = seed_run(repo, "dcgan")
    files = [a.path for a in client.list_artifacts(run_id, "images")]
    steps = {(m.group(1), int(m.group(2))) for f in files if (m := re.search(r"images/(\w+)\+step\+(\d+)\+", f))}
    # a grid an epoch, and the sample stage's grid under one key that MLflow's image grid compares runs by
    assert steps == {("samples", 1), ("samples", 2), ("final_samples", 0)}, files


def test_plots_csv_and_sample_files(project):
    import h5py

    repo = project["repo"]
    for name in ("dcgan", "cgan", "vae"):
        header = (repo / "plots" / "train" / name / "seed-0.csv").read_text().splitlines()[0].split(",")
        assert header[0] == "step"
        budget = (repo / "plots" / "train" / name / "seed-0-epochs.csv").read_text().splitlines()
        assert budget[0] == "epoch,step,images_seen,train_seconds,select_classifier_fid" and len(budget) == 3
    with h5py.File(repo / "samples" / "cgan" / "seed-0.h5") as f:
        assert f["images"].shape == (24, 1, 28, 28) and f["images"].dtype.name == "uint8"
        assert sorted(f["labels"][()].tolist()) == sorted([i % 10 for i in range(24)])
    assert (repo / "plots" / "samples" / "cgan" / "seed-0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_lists_every_model_and_the_reference(project):
    import pandas as pd

    repo = project["repo"]
    board = pd.read_csv(repo / "reports" / "leaderboard.csv")
    # one section per dataset, then per task, in order
    assert list(board["dataset"].drop_duplicates()) == [*DATASETS, *TASKS]
    sections = board.groupby("dataset")["model"].apply(set).to_dict()
    assert sections == {"fashion-mnist": set(NOISE_TYPES) | {"reference"}, "lfw": set(FACES) | {"reference"},
                        **{t: {m for m, task in TRANSLATION.items() if task == t} | {"identity"} for t in TASKS}}
    firsts = board.groupby("dataset", sort=False)["model"].first().to_dict()
    assert firsts == {**{d: "reference" for d in DATASETS}, **{t: "identity" for t in TASKS}}  # the baseline leads
    assert (board["status"] == "ok").all()
    for dataset in DATASETS:
        reference = read_record(repo / "metrics" / f"reference-{dataset}.json")
        assert reference["fid"]["n_fake"] == 12 and math.isfinite(reference["fid"]["value"])
        assert reference["fid"]["real_split"] == f"{dataset}/test"
    page = (repo / "reports" / "index.html").read_text()
    assert "../plots/samples/dcgan/seed-0.png" in page and "curves/dcgan.png" in page


def test_image_to_image_models_translate_their_tasks_and_are_scored_for_it(project):
    import h5py

    repo = project["repo"]
    client = mlflow_client(repo)
    cycle = {"cyclegan", "discogan", "dualgan"}
    for name, task in TRANSLATION.items():
        cls = MODEL_TYPES[name]
        with h5py.File(repo / "samples" / name / "seed-0.h5") as f:
            info = json.loads(f.attrs["info"])
            assert info["translation"] and info["task"] == task, name
            assert f["images"].shape == f["targets"].shape and len(f["inputs"]) == 24, name
            assert ("reconstructions" in f) == (name in cycle) and ("task_predictions" in f) == (name == "pixelda")
        record = seed_record(repo, name)
        assert math.isfinite(record["fid"]["value"]) and record["fid"]["real_split"] == f"{task}/test", name
        numbers = json.loads((repo / "metrics" / name / "seed-0.json").read_text())
        paired = cls.paired is True
        assert ("psnr" in numbers and "ssim" in numbers and "l1" in numbers) == paired, (name, numbers)
        if paired:
            assert 0 < numbers["psnr"] < 60 and -1 <= numbers["ssim"] <= 1 and 0 <= numbers["l1"] <= 1, name
        assert ("cycle_l1" in numbers) == (name in cycle), name
        assert ("task_accuracy" in numbers) == (name == "pixelda"), name
        run = client.get_run(seed_run(repo, name))
        assert client.get_experiment(run.info.experiment_id).name == task  # one MLflow experiment per task
        assert {"loss_g", "loss_d", "real_score", "fake_score"} <= set(run.data.metrics), name
        assert run.data.metrics["fid"] == numbers["fid"]
        assert (repo / "plots" / "samples" / name / "seed-0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    srgan = client.get_run(seed_run(repo, "srgan"))
    assert srgan.data.params["model.content_features_used"].startswith("dataset classifier conv block 2 (sr4.pt")
    identity = json.loads((repo / "metrics" / "reference-fm-m.json").read_text())["mean"]
    assert 0 <= identity["task_accuracy"] <= 1  # PixelDA's comparison: the source-only classifier
    inpaint = json.loads((repo / "metrics" / "reference-inpaint.json").read_text())["mean"]
    assert inpaint["psnr"] > 0 and "cycle_l1" not in inpaint
    features = read_record(repo / "metrics" / "reference-inpaint.json")["fid"]
    assert features["real_split"] == "inpaint/test"


def test_an_image_to_image_run_is_audited_and_retrained_byte_for_byte(project):
    """`genlab audit` of a translation model: its task's stages and its own rebuilt from the commit."""
    repo = project["repo"]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "results")
    run_id = seed_run(repo, "pix2pix")
    report = repo.parent / "audit-pix2pix.json"
    proc = subprocess.run([str(BIN / "genlab"), "audit", run_id, "--retrain", "--json", str(report)], cwd=repo,
                          env=env_for(repo, GENLAB_CACHE=str(repo.with_name(f"{repo.name}-genlab-cache"))),
                          capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    checks = {c["check"]: c for c in json.loads(report.read_text())["checks"]}
    assert checks["rebuilt samples/pix2pix/seed-0.h5"]["verdict"] == "match", output
    assert checks["retrained models/pix2pix/seed-0/model.pt (md5)"]["verdict"] == "match", output
    assert {"metric fid", "metric psnr", "metric ssim"} <= set(checks), sorted(checks)
    assert all(c["verdict"] == "match" for name, c in checks.items() if name.startswith("metric ")), output


def test_genlab_score_of_the_reference_images_gives_the_reference_rows_numbers(project, tmp_path):
    """The first sample.num_samples training images, written as PNGs and scored from outside the pipeline, get
    the reference row's Inception numbers (its first subset is those images) and classifier numbers within the
    spread of its subsets; images of another geometry are refused in one line, and nothing is written."""
    from genlab.data.hdf5 import read_split
    from genlab.metrics.registry import metric_numbers
    from genlab.serving.images import write_folder

    repo = project["repo"]
    n = yaml.safe_load((repo / "params.yaml").read_text())["sample"]["num_samples"]
    images, _ = read_split(repo / "data" / "packed" / "fashion-mnist.h5", "train", limit=n)
    write_folder(tmp_path / "real", images)

    def score(images_path, dataset="fashion-mnist"):
        return subprocess.run([sys.executable, "-m", "genlab", "score", str(images_path), "--dataset", dataset,
                               "--json", str(tmp_path / "score.json")], cwd=repo, env=env_for(repo),
                              capture_output=True, text=True, timeout=600)

    proc = score(tmp_path / "real")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "score.json").read_text())
    assert record["scored"]["n"] == n and record["fid"]["n_fake"] == record["kid"]["n_fake"]
    scored, reference = metric_numbers(record), json.loads((repo / "metrics" / "reference-fashion-mnist.json").read_text())
    for key in ("fid", "kid_mean", "precision", "recall", "density", "coverage"):
        assert scored[key] == pytest.approx(reference["mean"][key], rel=1e-9), key
    for key in ("classifier_kid", "classifier_fid", "classifier_precision"):
        assert reference["min"][key] - 1e-9 <= scored[key] <= reference["max"][key] + 1e-9, key
    (tmp_path / "score.json").unlink()
    rgb = np.repeat(images[:4], 3, axis=1)
    np.savez(tmp_path / "rgb.npz", images=rgb)
    refused = score(tmp_path / "rgb.npz")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'rgb.npz'}: images are 28x28 with 3 channels, but dataset fashion-mnist takes 28x28 "
        f"with 1 channel; genlab does not resize or convert them"]
    assert not (tmp_path / "score.json").exists()


def test_genlab_generate_draws_from_a_logged_run_and_translates_given_inputs(project, tmp_path):
    """A seed run's logged model file (runs:/<id>/model, downloaded from the store) draws what the checkout's
    models/<m>/seed-0 draws; an image-to-image model translates --input images of its input geometry only."""
    import h5py

    repo = project["repo"]

    def generate(*args):
        return subprocess.run([sys.executable, "-m", "genlab", "generate", *args], cwd=repo, env=env_for(repo),
                              capture_output=True, text=True, timeout=600)

    for ref, out in ((f"runs:/{seed_run(repo, 'gan')}/model", "store.h5"), ("gan", "local.h5")):
        proc = generate(ref, "-o", str(tmp_path / out), "--n", "12")
        assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(tmp_path / "store.h5") as a, h5py.File(tmp_path / "local.h5") as b:
        assert (a["images"][()] == b["images"][()]).all()
    with h5py.File(repo / "samples" / "gan" / "seed-0.h5") as f:  # the sample stage's own draw at seed 0
        drawn = f["images"][()]
    proc = generate("gan", "-o", str(tmp_path / "again.h5"), "--n", str(len(drawn)))
    with h5py.File(tmp_path / "again.h5") as f:
        assert proc.returncode == 0 and (f["images"][()] == drawn).all()
    with h5py.File(repo / "data" / "packed" / "inpaint.h5") as f:
        np.savez(tmp_path / "inputs.npz", images=f["test/inputs"][:5])
    proc = generate("pix2pix", "-o", str(tmp_path / "translated.h5"), "--input", str(tmp_path / "inputs.npz"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(tmp_path / "translated.h5") as f:
        assert f["images"].shape == (5, 1, 28, 28)
    np.savez(tmp_path / "small.npz", images=np.zeros((2, 1, 14, 14), np.uint8))
    proc = generate("pix2pix", "-o", str(tmp_path / "bad.h5"), "--input", str(tmp_path / "small.npz"))
    assert proc.returncode == 2 and "takes 28x28 with 1 channel" in proc.stderr
    assert not (tmp_path / "bad.h5").exists()
    proc = generate("models:/no-such-model@champion", "-o", str(tmp_path / "bad.h5"))
    assert proc.returncode == 2 and "models:/no-such-model@champion: not in the tracking store" in proc.stderr


def test_runs_show_as_model_training_with_dataset_and_source_in_the_mlflow_ui(project):
    repo = project["repo"]
    client = mlflow_client(repo)
    experiment = client.get_experiment_by_name("fashion-mnist")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI view
    data_md5 = hashlib.md5((repo / "data/packed/fashion-mnist.h5").read_bytes()).hexdigest()
    for name in ("gan", "vae"):
        run = client.get_run(seed_run(repo, name))
        (dataset_input,) = run.inputs.dataset_inputs
        assert dataset_input.dataset.name == "fashion-mnist" and dataset_input.dataset.digest == data_md5[:12]
        assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "train"}
        assert run.data.tags["mlflow.source.name"] == f"dvc repro train@{name}"
        assert run.data.tags["mlflow.source.git.commit"] == run.data.tags["git.commit"]
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "metrics")) == [
            "metrics/seed-0.json", "metrics/seed-0.protocol.json"]


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (`apt-get install chromium`)")
def test_the_mlflow_ui_in_a_browser_shows_the_runs_their_curves_and_grids(project, tmp_path):
    from genlab.server import free_port

    repo = project["repo"]
    client = mlflow_client(repo)
    experiment = client.get_experiment_by_name("fashion-mnist")
    run_id = seed_run(repo, "dcgan")
    with mlflow_ui(repo, free_port()) as url:
        page = f"{url}/{experiment_page(experiment.experiment_id)}"  # what `make ui` prints
        text = visible_text(rendered_dom(page))
        assert "Run Name" in text and "Token Usage" not in text  # the runs table, not the GenAI overview
        for name in ("dcgan", "wgan_gp", "vae"):  # its rows, with their Dataset and Source columns
            assert re.search(rf"\b{name}\b", text), name
        assert "fashion-mnist" in text and "train@" in text, text[-3000:]
        screenshot(page, tmp_path / "runs.png")

        # what a run's page fetches: its metric history and its step-indexed sample grids
        history = json.loads(fetch(f"{url}/ajax-api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss_d"))
        assert len(history["metrics"]) == len(client.get_metric_history(run_id, "loss_d")) >= 5
        grids = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
        png = fetch(f"{url}/get-artifact?{urlencode({'path': grids[0], 'run_uuid': run_id})}")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        run_page = visible_text(rendered_dom(f"{url}/#/experiments/{experiment.experiment_id}/runs/{run_id}"))
        assert "dcgan" in run_page and "loss_d" in run_page


def test_dvc_plots_show_and_exp_show_render_without_errors(project):
    repo = project["repo"]
    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    assert not plots.get("errors"), plots.get("errors")
    overlaid = {}
    for name in ("losses", "scores"):  # the top-level plots: every model in one plot, coloured by model
        (spec,) = [entry for entry in plots["data"][name] if entry["type"] == "vega"]
        rows = spec["content"]["data"]["values"]
        overlaid[name] = {row["model"] for row in rows}
        assert spec["content"]["encoding"]["color"]["field"] == "model"
    trained = {*NOISE_TYPES, *TRANSLATION}
    adversarial = {n for n in trained if hasattr(MODEL_TYPES[n], "loss_name")}
    assert overlaid["losses"] == trained | set(FACES)
    assert adversarial <= overlaid["scores"]
    images = {path for path, entries in plots["data"].items() if {e["type"] for e in entries} == {"image"}}
    # every seed's sample grid is an image plot: `dvc plots diff` sets them side by side across commits
    assert {f"plots/samples/{name}/seed-0.png" for name in trained | set(FACES)} <= images, sorted(images)
    html_dir = repo.with_name(f"{repo.name}-plots")
    out = dvc(repo, "plots", "show", "-o", str(html_dir))
    assert "error" not in (out.stdout + out.stderr).lower() and (html_dir / "index.html").stat().st_size > 0

    shown = dvc(repo, "exp", "show", "--json")
    assert "error" not in shown.stderr.lower(), shown.stderr
    table = dvc(repo, "exp", "show", "--no-pager", "--only-changed").stdout + dvc(repo, "metrics", "show").stdout
    assert "weights_sha256" not in table and "extractor" not in table and "reason" not in table
    metrics = dvc(repo, "metrics", "show", "--json").stdout
    (workspace,) = [rev["data"] for rev in json.loads(metrics).values()]
    assert workspace["metrics/gan.json"]["data"]["mean"]["fid"] > 0


def trained_entries() -> dict[str, str]:
    """entry -> its section (dataset or task)."""
    return {**{n: "fashion-mnist" for n in NOISE_TYPES}, **TRANSLATION, **{n: "lfw" for n in FACES}}


def test_every_seed_checkpoint_is_one_registered_version_and_the_first_ranked_is_champion(project):
    from genlab.reporting import champions

    repo = project["repo"]
    client = mlflow_client(repo)
    firsts = champions(pd.read_csv(repo / "reports" / "leaderboard.csv"))
    assert set(firsts) == {*DATASETS, *TASKS}
    for name, section in trained_entries().items():
        record = json.loads((repo / "registry" / f"{name}.json").read_text())
        assert record["registered_model"] == f"{section}.{name}", record
        versions = client.search_model_versions(f"name = '{section}.{name}'")
        made_of = [(v.run_id, v.tags["genlab.checkpoint"]) for v in versions]
        assert len(made_of) == len(set(made_of)), made_of  # a run's checkpoint is one version, however often run
        assert {v.run_id for v in versions} == {seed_run(repo, name, s) for s in seeds_of(name)}, name
        assert {c for _, c in made_of} <= {"last", "best"} and ("last" in {c for _, c in made_of})
        aliases = client.get_registered_model(f"{section}.{name}").aliases
        assert str(aliases["last"]) == str(record["versions"]["0"]["last"]), (name, aliases)
        assert ("champion" in aliases) == (firsts[section] == name), (name, aliases)
        logged = {a.path for a in client.list_artifacts(seed_run(repo, name), "mlflow_model/last")}
        assert "mlflow_model/last/MLmodel" in logged and "mlflow_model/last/artifacts" in logged, logged


def test_the_champion_loads_in_a_fresh_process_and_draws_what_genlab_generate_draws(project, tmp_path):
    from genlab.reporting import champions

    repo = project["repo"]
    uri = f"models:/fashion-mnist.{champions(pd.read_csv(repo / 'reports' / 'leaderboard.csv'))['fashion-mnist']}@champion"
    env = env_for(repo, MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}")
    code = ("import sys, mlflow, numpy as np, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]); "
            "np.save(sys.argv[2], m.predict(pd.DataFrame({'n': [12], 'seed': [5], 'label': [-1]})))")
    loaded = subprocess.run([sys.executable, "-c", code, uri, str(tmp_path / "pyfunc.npy")], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    made = subprocess.run([sys.executable, "-m", "genlab", "generate", uri, "-o", str(tmp_path / "generate.h5"),
                           "--n", "12", "--seed", "5"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    import h5py

    with h5py.File(tmp_path / "generate.h5") as f:
        assert np.load(tmp_path / "pyfunc.npy").tobytes() == f["images"][()].tobytes()

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "copy")))
    (weights,) = (local / "artifacts").glob("*.pt")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a damaged copy is refused
    code = "import sys, mlflow; mlflow.pyfunc.load_model(sys.argv[1])"
    refused = subprocess.run([sys.executable, "-c", code, str(local)], cwd=repo, env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode != 0 and "register the run's model again" in refused.stderr, refused.stderr[-2000:]


def test_mlflow_models_serve_answers_with_the_images_asked_for(project):
    import urllib.request

    from genlab.reporting import champions
    from genlab.server import free_port

    repo = project["repo"]
    name = champions(pd.read_csv(repo / "reports" / "leaderboard.csv"))["fashion-mnist"]
    port = free_port()
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", f"models:/fashion-mnist.{name}@champion",
                             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], cwd=repo,
                            env=env_for(repo, MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the model server did not come up"
                time.sleep(0.5)
        body = json.dumps({"dataframe_split": {"columns": ["n", "seed", "label"], "data": [[64, 3, -1]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            images = np.asarray(json.loads(response.read())["predictions"])
        assert images.shape == (64, 1, 28, 28) and 0 <= images.min() and images.max() <= 255
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def line_of(output: str, prefix: str) -> str:
    """The rest of the first line of a stage's output that starts with `prefix` (`gan seed 0: `, not `dcgan ...`)."""
    match = re.search(rf"(?<!\w){re.escape(prefix)}([^\n]*)", output)
    assert match, f"no line {prefix!r} in:\n{output[-3000:]}"
    return match.group(1)


def test_a_second_repro_runs_nothing_and_each_change_reruns_only_what_depends_on_it(project):
    """Three changes in one `dvc repro` (one model's lr, a seed added to another, one dataset's preprocessing):
    exactly the stages that depend on each run, and the added seed trains alone under its model's parent run."""
    repo = project["repo"]
    again = dvc(repo, "repro")
    assert ran_stages(again.stdout + again.stderr) == set()

    client = mlflow_client(repo)
    kept = {s: hashlib.md5((repo / "models" / "gan" / f"seed-{s}" / "model.pt").read_bytes()).hexdigest() for s in (0, 1)}
    children = {s: seed_run(repo, "gan", s) for s in (0, 1)}
    parent = json.loads((repo / "models" / "gan" / "mlflow_run.json").read_text())["run_id"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["dcgan"]["lr"] = 0.0001
    params["models"]["gan"]["seeds"] = [0, 1, 2]
    params["datasets"]["lfw"]["pack"]["crop"] = 100
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = dvc(repo, "repro")
    output = changed.stdout + changed.stderr
    faces = {f"{stage}@lfw" for stage in PER_DATASET if stage != "download"} | model_stages(*FACES)
    assert ran_stages(output) == model_stages("dcgan") | model_stages("gan") | faces | {"report"}

    assert "kept (already trained)" in line_of(output, "gan seed 0: ")
    assert "kept (already trained)" in line_of(output, "gan seed 1: ")
    assert "img/s" in line_of(output, "gan seed 2: ")  # the new seed is trained
    for seed, md5 in kept.items():
        assert hashlib.md5((repo / "models" / "gan" / f"seed-{seed}" / "model.pt").read_bytes()).hexdigest() == md5
        assert seed_run(repo, "gan", seed) == children[seed]
    assert json.loads((repo / "models" / "gan" / "mlflow_run.json").read_text())["run_id"] == parent
    experiment = client.get_experiment_by_name("fashion-mnist").experiment_id
    family = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.data.tags["genlab.seed"] for r in family) == ["0", "1", "2"]
    assert json.loads((repo / "metrics" / "gan.json").read_text())["n"] == 3


def test_compare_two_runs_of_the_store(project, tmp_path):
    repo = project["repo"]
    out = tmp_path / "cmp.html"
    proc = subprocess.run([sys.executable, "-m", "genlab", "compare", "gan@0", "dcgan@0", "-o", str(out)],
                          cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    client = mlflow_client(repo)
    for name in ("gan", "dcgan"):
        run = client.get_run(seed_run(repo, name, 0))
        assert run.info.run_id in page, name
        assert base64.b64encode((repo / "plots" / "samples" / name / "seed-0.png").read_bytes()).decode() in page, name
        assert f"{run.data.metrics['fid']:.6g}" in page, name
    differing = page.split("<h2>Params that differ</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<th>model.type</th>" in differing and "<th>seed</th>" not in differing  # seed: 0 in both


def test_the_champion_alias_moves_when_the_ranking_changes(project):
    """Re-ranked by another key, only the report re-runs, `champion` lands on each section's new first entry,
    and no re-run registers a second version of a run's checkpoint. Last in the module: it puts rank_by back."""
    from genlab.reporting import champions

    repo = project["repo"]
    client = mlflow_client(repo)
    original = yaml.safe_load((repo / "params.yaml").read_text())
    before = champions(pd.read_csv(repo / "reports" / "leaderboard.csv"))
    moved, after = set(), before
    try:
        for key in ("fid", "kid_mean", "classifier_fid"):  # the first whose order moves a section's first entry
            params = {**original, "report": {**original["report"], "rank_by": key}}
            (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            rerun = dvc(repo, "repro")
            if rerun.returncode != 0 and "report.rank_by" in rerun.stdout + rerun.stderr:
                continue  # not computed for every section of these params
            assert rerun.returncode == 0, rerun.stderr
            assert ran_stages(rerun.stdout + rerun.stderr) == {"report"}
            after = champions(pd.read_csv(repo / "reports" / "leaderboard.csv"))
            moved = {section for section in after if after[section] != before[section]}
            if moved:
                break
        assert moved, f"no rank key tried moves a section's first entry: {before}"
        holders = {}
        for name, section in trained_entries().items():
            versions = client.search_model_versions(f"name = '{section}.{name}'")
            made_of = [(v.run_id, v.tags["genlab.checkpoint"]) for v in versions]
            assert len(made_of) == len(set(made_of)), made_of  # re-runs add no version for a kept run
            if "champion" in client.get_registered_model(f"{section}.{name}").aliases:
                holders.setdefault(section, set()).add(name)
        for section in moved:
            assert after[section] in holders.get(section, set()), (section, after[section], holders)
        assert holders == {section: {first} for section, first in after.items()}, holders  # one holder a section
    finally:
        (repo / "params.yaml").write_text(yaml.safe_dump(original, sort_keys=False))
