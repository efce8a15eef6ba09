"""`genlab generate MODEL`: images from a trained model, outside the pipeline.

MODEL is one of
- a model directory: `models/<m>` (its first training seed) or `models/<m>/seed-<s>`;
- a params entry's name: `models/<name>` under the current directory;
- an MLflow run id: the seed run's own directory when this checkout holds it, else its logged model file;
- `runs:/<run id>/<path>`: a model file (or the folder holding `model.pt`) logged to that run;
- `models:/<name>@<alias>` or `models:/<name>/<version>`: a registered model (an MLflow Model of the register
  stage, whose one artifact is its model file; genlab.serving.mlflow_model).
The model file is read as data only (genlab.torch_io); a foreign or damaged one is refused in one line.

The noise comes from a CPU generator seeded with --seed, batch by batch as the evaluate stage draws it: the
same seed and batch size give the same images as `samples/<m>/seed-<s>.h5` at that seed, on any device
within its rounding, and the same bytes on the same machine.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.errors import InputError
from genlab.models.samples import Samples
from genlab.serving.images import ImagesError, read_images, require_geometry, write_folder

RUN_ID = re.compile(r"[0-9a-f]{32}")
MODEL_FILES = {"last": "model.pt", "best": "best.pt"}


class UnknownModel(InputError):
    """A MODEL reference that names no trained model."""


@dataclass
class ResolvedModel:
    directory: Path  # holds model.pt (and best.pt where training kept one)
    label: str       # what the reference named, for messages and the output's info
    download: Path | None = None  # the temporary folder of a copy from the tracking store, removed once loaded
    file: Path | None = None  # an MLflow Model's one model file (whichever checkpoint it was made of)


def resolve_model(ref: str, root: Path = Path(".")) -> ResolvedModel:
    """The directory holding the model file `ref` names (see the module's docstring)."""
    root = Path(root)
    if ref.startswith(("runs:/", "models:/")):
        return ResolvedModel(*_download(ref, ref))
    path = Path(ref)
    for candidate in (path, root / "models" / ref):
        found = _model_dir(candidate)
        if found is not None:
            return ResolvedModel(found, ref)
    if RUN_ID.fullmatch(ref):
        for run_file in sorted(root.glob("models/*/seed-*/mlflow_run.json")):
            if ref in run_file.read_text():
                return ResolvedModel(run_file.parent, ref)
        return ResolvedModel(*_download(f"runs:/{ref}/model", ref))
    raise UnknownModel(f"{ref}: no trained model; MODEL is a models/<m> directory, a params entry's name, "
                       f"an MLflow run id, runs:/<id>/<path> or models:/<name>@<alias>")


def _model_dir(path: Path) -> Path | None:
    """`path` when it holds a model file; its first seed's directory when it holds seed-<s> directories."""
    if not path.is_dir():
        return None
    if any((path / name).is_file() for name in MODEL_FILES.values()):
        return path
    from genlab.layout import seed_path, seeds_in

    seeds = [s for s in seeds_in(path) if (seed_path(path, s) / MODEL_FILES["last"]).is_file()]
    return seed_path(path, seeds[0]) if seeds else None


def _download(uri: str, label: str) -> tuple:
    """(the folder of model files at an MLflow artifact URI, `label`, the temporary folder it went into[, the
    model file of an MLflow Model])."""
    import tempfile

    from genlab.tracking import client

    client()  # the store genlab uses: MLFLOW_TRACKING_URI, else the repository's mlflow.db
    import mlflow

    tmp = Path(tempfile.mkdtemp(prefix="genlab-model-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp)))
        if (local / "MLmodel").is_file():  # an MLflow Model: its artifacts hold the model file
            files = sorted((local / "artifacts").glob("*.pt"))
            if len(files) != 1:
                raise UnknownModel(f"{uri}: an MLflow Model without genlab's model file (artifacts/*.pt)")
            return files[0].parent, label, tmp, files[0]
        found = _model_dir(local) or (_model_dir(local.parent) if local.is_file() else None)
        if found is None:
            raise UnknownModel(f"{uri}: downloaded, but it holds no model.pt")
    except Exception as err:  # MLflow raises its own and the store's errors: one line names the reference
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, UnknownModel):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnknownModel(f"{uri}: not in the tracking store ({first})") from None
    return found, label, tmp


def draw(model, n: int, seed: int, batch_size: int, label: int | None = None,
         inputs: np.ndarray | None = None) -> Samples:
    """n samples of a noise-to-image model (balanced labels for a conditional one, or all `label`), or an
    image-to-image model's outputs for `inputs`."""
    from genlab.models.samples import Prompts

    gen = torch.Generator(device="cpu").manual_seed(seed)
    if model.input_shape is not None:  # it translates images
        if inputs is None:
            raise ImagesError(f"{model.spec.name} is an image-to-image model ({model.type_name}): give --input images")
        require_geometry(inputs, model.input_shape, f"{model.spec.name} ({model.type_name})", "--input")
        return model.sample(Prompts(len(inputs), inputs=torch.from_numpy(inputs)), gen, batch_size)
    if inputs is not None:
        raise ImagesError(f"{model.spec.name} ({model.type_name}) draws from noise; --input is for image-to-image models")
    if label is None:
        return model.sample(model.prompts(n), gen, batch_size, progress="generate")
    if not model.conditional:
        raise ImagesError(f"{model.spec.name} ({model.type_name}) is unconditional: it takes no --label")
    if not 0 <= label < model.num_classes:
        raise ImagesError(f"--label {label}: {model.spec.name} has classes 0-{model.num_classes - 1}")
    return model.sample(Prompts(n, labels=torch.full((n,), label, dtype=torch.long)), gen, batch_size)


def generate(ref: str, out: Path, *, n: int, seed: int, batch_size: int, label: int | None = None,
             input_path: Path | None = None, device: str = "cpu", checkpoint: str = "last") -> str:
    """Draw from the model `ref` names into `out`: a .png grid, an .h5 samples file, else a folder of PNGs.
    Returns a line saying what was written."""
    from genlab.grid import save_grid
    from genlab.sampling.grid import grid_tiles
    from genlab.sampling.sample import write_samples
    from genlab.device import resolve_device
    from genlab.models.files import load_model, read_model_file

    if n < 1:
        raise ImagesError(f"--n {n}: give at least 1")
    inputs = read_images(input_path) if input_path is not None else None
    resolved = resolve_model(ref)
    try:
        if resolved.file is not None:  # a registered model: one checkpoint, the one it was made of
            model = read_model_file(resolved.file, resolve_device(device), f"{ref}: register the run's model again")
            checkpoint = {"model": "last"}.get(resolved.file.stem, resolved.file.stem)
        else:
            model = load_model(resolved.directory, resolve_device(device), checkpoint)
    finally:
        if resolved.download is not None:
            shutil.rmtree(resolved.download, ignore_errors=True)
    samples = draw(model, n, seed, batch_size, label, inputs)
    out = Path(out)
    if out.suffix == ".png":
        save_grid(out, *grid_tiles(samples, model.num_classes))
    elif out.suffix in (".h5", ".hdf5"):
        arrays = {"images": samples.images, **({"labels": samples.labels} if samples.labels is not None else {})}
        write_samples(out, arrays, {"model": resolved.label, "type": model.type_name, "seed": seed,
                                    "n": len(samples.images), "checkpoint": checkpoint,
                                    "train_precision": model.train_precision, "generated": "genlab generate"})
    else:
        write_folder(out, samples.images.numpy())
    source = ref if resolved.download is not None else resolved.directory
    return f"wrote {out}: {len(samples.images)} images from {source} ({model.type_name}, {checkpoint}, seed {seed})"
