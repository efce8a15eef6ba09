"""The MLflow UI in a real browser: the runs page's chart view shows the image grid of two runs' sample grids.

A real `mlflow server` on a temporary store (sqlite, and an artifact folder it serves, as `genlab server` does)
under tmp_path. Two runs logged through it with genlab's own client, in an experiment made by genlab's
`experiment_id` (the "Model training" kind), each logging its per-epoch sample grid the way the train stage
does (genlab.training.loop: `run.log_image(epoch_grid(...), key="samples", step=<epoch, from 1>)`). Then
headless Chromium (Debian's, driven by Playwright) opens the experiment's runs page in chart mode, where
MLflow 3 makes an image-grid card per logged image key. The test asserts the card shows both runs by
name, each with its own final grid: an <img> per run whose src is that run's logged artifact
(`get-artifact?path=images/samples+step+<final>+...&run_uuid=<run>`), loaded, with the grey level that run
logged at its final epoch; and that the page raised no script error.

MLflow 3.17's card opens at step 0 while the slider's range is the logged steps (1..epochs here), and it
jumps to the logged step by itself only when there is just one; with two or more epochs every run first shows
"No image logged at this step". The test does what a user does: types the final step into the card's step box.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from browser import chromium
from projects import start_mlflow_server, stop_group

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="needs Chromium (`apt-get install chromium`)"),
]

EPOCHS = 2  # the grids logged per run, at steps 1..EPOCHS as the train stage logs them
GREY = {"gan": 40, "vae": 190}  # run name -> the grey level of its grid's tiles at the final epoch
MEAN_TOLERANCE = 10.0  # of 255: the UI shows MLflow's webp thumbnail of the PNG, lossy and resized


def sample_grid(grey: int) -> np.ndarray:
    """A sample grid as genlab's epoch_grid makes it: 4 tiles of 16x16 in genlab.grid's layout."""
    from genlab.grid import grid_array

    return grid_array(np.full((4, 1, 16, 16), grey, np.uint8), nrow=2)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a new sqlite store, artifacts served by it as `genlab server` serves them,
    on a free 127.0.0.1 port; stopped with its whole process group."""
    from genlab.server import free_port

    port = free_port()
    proc = start_mlflow_server(tmp_path / "store", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc, timeout=20)


@pytest.fixture
def logged_runs(mlflow_server, monkeypatch):
    """Two runs logged through the server as a stage logs to a team's server: experiment id, and
    run id -> (run name, mean of its final grid)."""
    from genlab.tracking import GRID_KEY
    from genlab.tracking.mlflow_run import TrainingRun, client, experiment_id

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    cl = client()
    exp_id = experiment_id(cl, "fashion-mnist")  # genlab's experiment: the "Model training" kind
    runs = {}
    for name, grey in GREY.items():
        run = TrainingRun(cl, cl.create_run(exp_id, run_name=name).info.run_id)
        for epoch in range(EPOCHS):  # earlier epochs another grey: the card must show the final one
            grid = sample_grid(grey if epoch + 1 == EPOCHS else 255 - grey)
            run.log_image(grid, key=GRID_KEY, step=epoch + 1)
        run.terminate()
        runs[run.run_id] = (name, float(grid.mean()))
    return {"experiment": exp_id, "runs": runs}


MEAN_GREY = """img => {  // the decoded image's mean over its RGB channels, 0..255
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
    return sum / (3 * data.length / 4);
}"""


def test_the_chart_view_shows_the_sample_grids_of_both_runs(logged_runs, mlflow_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from genlab.tracking import GRID_KEY

    runs = logged_runs["runs"]
    page_url = (f"{mlflow_server}/#/experiments/{logged_runs['experiment']}/runs"
                f"?workflowType=machine_learning&compareRunsMode=CHART")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            errors = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(page_url)
            # the image-grid card MLflow makes for the logged key, titled with it
            card = page.get_by_test_id("experiment-view-compare-runs-card").filter(
                has=page.get_by_role("heading", name=GRID_KEY, exact=True))
            try:
                expect(card).to_have_count(1, timeout=60_000)
                for name, _ in runs.values():  # each run's row in the card: its colour chip, then its name
                    expect(card).to_contain_text(re.compile(rf"^{name}$", re.M), use_inner_text=True)
                # the step slider spans the logged steps once the runs' image listings have loaded
                expect(card.get_by_role("slider")).to_have_attribute("aria-valuemax", str(EPOCHS), timeout=30_000)
                step_box = card.locator("input[type=number]")
                step_box.fill(str(EPOCHS))
                step_box.press("Tab")  # the box commits on blur
                expect(card.get_by_role("slider")).to_have_attribute("aria-valuenow", str(EPOCHS))
                images = card.locator("img")
                expect(images).to_have_count(len(runs), timeout=30_000)
                page.wait_for_function("els => els.every(e => e.complete && e.naturalWidth > 0)",
                                       arg=images.element_handles(), timeout=30_000)
            finally:
                page.screenshot(path=tmp_path / "chart-view.png", full_page=True)

            shown = {}
            for img in images.all():
                src = urlsplit(img.get_attribute("src"))
                query = parse_qs(src.query)
                assert src.path.endswith("get-artifact"), src
                (run_id,), (path,) = query["run_uuid"], query["path"]
                assert path.startswith(f"images/{GRID_KEY}+step+{EPOCHS}+"), path  # the final epoch's grid
                shown[run_id] = img.evaluate(MEAN_GREY)
            assert set(shown) == set(runs), (shown, runs)  # one grid of each run, no run twice
            for run_id, (name, mean) in runs.items():
                assert abs(shown[run_id] - mean) < MEAN_TOLERANCE, (name, shown[run_id], mean)
            assert not errors, errors
        finally:
            browser.close()
