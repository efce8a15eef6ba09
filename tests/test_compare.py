"""genlab compare: runs logged the way the pipeline logs them, in a temporary MLflow store, on one page.

The store holds a model with two training seeds (a parent run and one child run a seed, as today's
train stage makes them) and two runs made before training seeds: one with split metrics files
(`<model>.json` beside `<model>.protocol.json`), one with the nested record alone."""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.errors import GenlabError
from genlab.reporting.compare import compare_runs

REPO = Path(__file__).resolve().parents[1]
FID = {"gan": 123.456, "dcgan": 98.7654, "vae": 77.5}
INCEPTION = {"extractor": "inception-v3-tf-fidhelper", "runtime": "onnxruntime", "n_real": 500}
NO_IS = {"reason": "no full Inception weights"}


def grid(salt: int) -> np.ndarray:
    return np.random.default_rng(salt).integers(0, 256, (10, 14, 3), dtype=np.uint8)


def nested_record(model: str, n_fake: int) -> dict:
    """A metrics record as the evaluate stage builds it: each result beside its protocol."""
    protocol = {**INCEPTION, "n_fake": n_fake}
    return {"model": model, "fid": {"value": FID[model], **protocol},
            "kid": {"mean": 0.15, "std": 0.01, "subset_size": 100, **protocol},
            "precision_recall": {"precision": 0.5, "recall": 0.25, "f_score": 0.3, "neighborhood": 3, **protocol},
            "inception_score": {"value": None, **NO_IS}}


def split_records(n_fake: int) -> tuple[dict, dict]:
    """metrics/<model>.json (numbers only) and metrics/<model>.protocol.json (the whole record: each
    number beside its protocol), as runs made before training seeds logged them."""
    protocol = {**INCEPTION, "n_fake": n_fake}
    numbers = {"fid": FID["dcgan"], "kid_mean": 0.12, "kid_std": 0.02, "precision": 0.6, "recall": 0.3}
    kid_pr = {**INCEPTION, "n_fake": 250}
    return numbers, {"model": "dcgan", "fid": {"value": FID["dcgan"], **protocol},
                     "kid": {"mean": 0.12, "std": 0.02, "subset_size": 100, **kid_pr},
                     "precision_recall": {"precision": 0.6, "recall": 0.3, "f_score": 0.4, "neighborhood": 3, **kid_pr},
                     "inception_score": {"value": None, **NO_IS}}


def log_run(client, experiment: str, tmp: Path, model: str, *, lr: str, salt: int, image_steps, grid_name: str,
            files: dict, seed: int = 0, tags: dict | None = None) -> str:
    """One trained model's run: curves, per-epoch grids, its numbers, its final grid and metrics files."""
    from mlflow.entities import Metric, Param

    run_id = client.create_run(experiment, run_name=model,
                               tags={"genlab.model": model, "git.commit": "c0ffee", **(tags or {})}).info.run_id
    curves = [Metric(key, salt + step / (i + 1), 0, step) for step in range(1, 9)
              for i, key in enumerate(("loss_g", "loss_d", "real_score", "fake_score"))]
    evaluation = [Metric("fid", FID[model], 0, 0), Metric(f"fid_n{250 if model == 'gan' else 500}", FID[model], 0, 0),
                  Metric("kid_mean", 0.1 + salt, 0, 0), Metric("precision", 0.5, 0, 0)]
    params = [Param("model.lr", lr), Param("seed", str(seed)), Param("train.device", "cpu")]
    client.log_batch(run_id, metrics=curves + evaluation, params=params)
    for step in image_steps:
        client.log_image(run_id, grid(salt * 100 + step), key="samples", step=step)
    folder = tmp / run_id
    folder.mkdir()
    Image.fromarray(grid(salt)).save(folder / grid_name)
    client.log_artifact(run_id, str(folder / grid_name), "samples")
    for name, record in files.items():
        (folder / name).write_text(json.dumps(record))
        client.log_artifact(run_id, str(folder / name), "metrics")
    client.set_terminated(run_id)
    return run_id


def log_seeds(client, experiment: str, tmp: Path, model: str, seeds: dict[int, int], **kwargs) -> dict:
    """A model trained with several seeds: its parent run (numbers over seeds), then one child run a
    seed with samples/seed-<s>.png and metrics/seed-<s>.json + .protocol.json. {seed: id, "parent": id}"""
    from mlflow.entities import Metric, Param

    parent = client.create_run(experiment, run_name=model, tags={
        "genlab.model": model, "genlab.role": "parent", "genlab.seeds": ",".join(map(str, seeds)),
        "git.commit": "c0ffee"}).info.run_id
    client.log_batch(parent, metrics=[Metric("fid.mean", FID[model], 0, 0), Metric("fid.std", 1.5, 0, 0)],
                     params=[Param("model.lr", kwargs["lr"]), Param("seeds", str(list(seeds)))])
    ids = {"parent": parent}
    for seed, salt in seeds.items():
        record = nested_record(model, 250)
        numbers = {"fid": FID[model], "kid_mean": 0.15, "kid_std": 0.01, "precision": 0.5, "recall": 0.25}
        ids[seed] = log_run(client, experiment, tmp, model, salt=salt, seed=seed, grid_name=f"seed-{seed}.png",
                            files={f"seed-{seed}.json": numbers, f"seed-{seed}.protocol.json": record},
                            tags={"genlab.seed": str(seed), "mlflow.parentRunId": parent}, **kwargs)
    client.set_terminated(parent)
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory, mlflow_store_at):
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("store")
    uri = mlflow_store_at(tmp)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("fashion-mnist", artifact_location=(tmp / "mlartifacts").as_uri())
    numbers, protocols = split_records(500)
    ids = {"gan": log_seeds(client, experiment, tmp, "gan", {0: 1, 1: 3}, lr="0.0002", image_steps=(1, 2)),
           "dcgan": log_run(client, experiment, tmp, "dcgan", lr="0.001", salt=2, image_steps=(1, 2, 3),
                            grid_name="dcgan.png", files={"dcgan.json": numbers, "dcgan.protocol.json": protocols},
                            tags={"dvc.exp_name": "lucky-lr"}),
           "vae": log_run(client, experiment, tmp, "vae", lr="0.001", salt=4, image_steps=(), grid_name="vae.png",
                          files={"vae.json": nested_record("vae", 250)})}
    return {"client": client, "uri": uri, "ids": ids, "tmp": tmp}


@pytest.fixture(scope="module")
def page(store) -> str:
    out = compare_runs(store["client"], ["gan", "lucky-lr"], store["tmp"] / "out" / "cmp.html")
    return out.read_text()


def images_in(fragment: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
            for data in re.findall(r"src='data:image/png;base64,([^']+)'", fragment)]


def section(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>", 1)[1].split("<h2>", 1)[0]


def test_final_grids_of_both_runs_side_by_side(page):
    final = images_in(section(page, "Final sample grids"))
    assert len(final) == 2
    assert np.array_equal(final[0], grid(1)) and np.array_equal(final[1], grid(2))  # gan's seed 0, dcgan's
    assert "alt='samples/seed-0.png'" in page and "alt='samples/dcgan.png'" in page


def test_per_epoch_grids_one_row_per_step_empty_where_a_run_has_none(page):
    rows = dict(re.findall(r"<tr><th>(\d+)</th>(.*?)</tr>", section(page, "Per-epoch sample grids")))
    assert sorted(rows) == ["1", "2", "3"]
    for step in (1, 2):
        gan, dcgan = re.findall(r"<td>(.*?)</td>", rows[str(step)])
        assert np.array_equal(images_in(gan)[0], grid(100 + step))
        assert np.array_equal(images_in(dcgan)[0], grid(200 + step))
    gan, dcgan = re.findall(r"<td>(.*?)</td>", rows["3"])
    assert gan == "" and np.array_equal(images_in(dcgan)[0], grid(203))


def test_one_chart_per_curve_and_none_for_single_values(page):
    curves = section(page, "Training curves")
    assert re.findall(r"alt='([^']+)'", curves) == ["fake_score", "loss_d", "loss_g", "real_score"]


def test_params_that_differ_and_only_those(page):
    params = section(page, "Params that differ")
    assert "model.lr" in params and "0.0002" in params and "0.001" in params
    assert "seed" not in params and "train.device" not in params
    assert "1 of 3 params differ" in params


def test_metrics_with_values_protocols_and_the_protocol_difference_marked(page):
    metrics = section(page, "Metrics logged once")
    rows = dict(re.findall(r"<tr(?: class='differs')?><th>([^<]+)</th>(.*?)</tr>", metrics))
    fid = rows["fid ⚠ protocols differ"]  # N differs: each run's protocol under its value
    assert "123.456" in fid and "98.7654" in fid and "n_fake=250" in fid and "n_fake=500" in fid
    assert "extractor=inception-v3-tf-fidhelper" in fid
    assert rows["kid_mean"].count("subset_size=100") == 1  # the same protocol in both runs: shown once
    assert "precision" in rows and "neighborhood=3" in rows["precision"]  # nested: results left out of it
    assert "reason=no full Inception weights" in rows["inception_score"]  # an entry no metric comes from
    assert not any(name.startswith(("loss", "real_score", "fake_score")) for name in rows)


def test_run_headers(page, store):
    runs = section(page, "Runs")
    assert store["ids"]["gan"][0] in runs and store["ids"]["dcgan"] in runs
    assert "lucky-lr" in runs and "c0ffee" in runs and "FINISHED" in runs and "fashion-mnist" in runs
    assert store["ids"]["gan"]["parent"] in runs  # the seed run's parent
    assert f"gan@0 {store['ids']['gan'][0][:8]}" in runs and f"dcgan (lucky-lr) {store['ids']['dcgan'][:8]}" in runs
    assert html.escape(store["uri"]) in page


def runs_shown(page: str) -> list[str]:
    return re.findall(r"<code>([0-9a-f]{32})</code>", section(page, "Runs").split("<th>parent run</th>")[0])


def test_model_names_resolve_to_their_first_seeds_run(store):
    out = compare_runs(store["client"], ["gan", "dcgan"], store["tmp"] / "by-name.html")
    assert runs_shown(out.read_text()) == [store["ids"]["gan"][0], store["ids"]["dcgan"]]  # seed 1's is newer


def test_a_seed_by_name_and_a_parent_run_by_id(store):
    ids = store["ids"]["gan"]
    page = compare_runs(store["client"], ["gan@1", ids["parent"]], store["tmp"] / "seeds.html").read_text()
    assert runs_shown(page) == [ids[1], ids[0]]  # the parent: its first seed's run
    final = images_in(section(page, "Final sample grids"))
    assert np.array_equal(final[0], grid(3)) and np.array_equal(final[1], grid(1))
    assert "seed" in section(page, "Params that differ")


def test_a_run_made_before_the_split_reads_its_nested_metrics_file(store):
    page = compare_runs(store["client"], ["vae"], store["tmp"] / "nested.html").read_text()
    assert np.array_equal(images_in(section(page, "Final sample grids"))[0], grid(4))
    rows = dict(re.findall(r"<tr(?: class='differs')?><th>([^<]+)</th>(.*?)</tr>", section(page, "Metrics logged once")))
    assert "n_fake=250" in rows["fid"] and "reason=no full Inception weights" in rows["inception_score"]


def test_one_run_alone(store):
    page = compare_runs(store["client"], ["gan"], store["tmp"] / "alone.html").read_text()
    assert "All 3 params equal" in page and len(images_in(section(page, "Final sample grids"))) == 1


def test_an_unknown_run_is_named_in_the_error(store):
    with pytest.raises(GenlabError, match="'nosuchmodel'.*run id.*model name.*dvc exp"):
        compare_runs(store["client"], ["gan", "nosuchmodel"], store["tmp"] / "never.html")
    with pytest.raises(GenlabError, match="f" * 32):
        compare_runs(store["client"], ["f" * 32], store["tmp"] / "never.html")
    with pytest.raises(GenlabError, match="'gan' with training seed 7.*seeds 0, 1"):
        compare_runs(store["client"], ["gan@7"], store["tmp"] / "never.html")
    assert not (store["tmp"] / "never.html").exists()


@pytest.mark.slow
def test_cli_exits_2_with_the_error_for_an_unknown_run(store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "genlab", "compare", "gan", "nosuchmodel", "-o", str(tmp_path / "x.html")]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "nosuchmodel" in proc.stderr
    assert not (tmp_path / "x.html").exists()
