"""Image-to-image: task derivations, their validation, the seven model types, the task loader, and
training then sampling one model on a tiny task."""
from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
import torch

from genlab.config import ParamsError, parse_params
from genlab.data.hdf5 import read_info, read_inputs, read_split
from genlab.data.tasks import downsample, edge_maps, mask_box, photographs
from genlab.models import MODEL_TYPES, build_model
from genlab.models.samples import Prompts
from genlab.training.data import open_train_data
from genlab.training.resources import StageResources
from miniatures import packed_bars

TRANSLATION_TYPES = ("pix2pix", "cyclegan", "discogan", "dualgan", "srgan", "ccgan", "pixelda")
TASKS = {
    "paired-edges": {"dataset": "fashion-mnist", "kind": "edges"},
    "unpaired-edges": {"dataset": "fashion-mnist", "kind": "edges", "paired": False},
    "sr4": {"dataset": "fashion-mnist", "kind": "super_resolution", "factor": 4},
    "inpaint": {"dataset": "fashion-mnist", "kind": "inpainting", "mask": 14},
    "fm-m": {"dataset": "fashion-mnist", "kind": "blend"},
}
TASK_OF = {"pix2pix": "paired-edges", "cyclegan": "unpaired-edges", "discogan": "unpaired-edges",
           "dualgan": "unpaired-edges", "srgan": "sr4", "ccgan": "inpaint", "pixelda": "fm-m"}
SMALL = {"pix2pix": {"width": 8}, "cyclegan": {"width": 8, "residual_blocks": 1},
         "discogan": {"width": 8}, "dualgan": {"width": 8}, "srgan": {"width": 8, "residual_blocks": 1},
         "ccgan": {"width": 8}, "pixelda": {"width": 8, "residual_blocks": 1}}
#: The networks one training step updates, per type (top-level attributes of the model).
NETWORKS = {"pix2pix": {"G", "D"}, "cyclegan": {"G_AB", "G_BA", "D_A", "D_B"},
            "discogan": {"G_AB", "G_BA", "D_A", "D_B"}, "dualgan": {"G_AB", "G_BA", "D_A", "D_B"},
            "srgan": {"G", "D"}, "ccgan": {"G", "D"}, "pixelda": {"noise", "G", "D", "C"}}


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """96 train / 32 test garment-like images: a bright block whose row gives the class."""
    return packed_bars(tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("packed") / "fashion-mnist.h5",
                       (96, 32), noise=30, rows=(2, 10), cols=(6, 22), value=200)


def params(models=None, tasks=None, **top):
    return parse_params({"tasks": TASKS if tasks is None else tasks, "models": models or {"g": {"type": "gan"}},
                         **top})


@pytest.fixture(scope="module")
def task_files(packed, tmp_path_factory):
    from genlab.data.task_files import derive_task

    out = tmp_path_factory.mktemp("tasks")
    files = {}
    for name, task in params().tasks.items():
        files[name] = out / f"{name}.h5"
        derive_task(name, task.kind, task.settings, packed, files[name])
    return files


# --------------------------------------------------------------------------- tasks
def test_tasks_are_byte_stable(packed, task_files, tmp_path):
    from genlab.data.task_files import derive_task

    for name, task in params().tasks.items():
        again = tmp_path / f"{name}.h5"
        derive_task(name, task.kind, task.settings, packed, again)
        assert again.read_bytes() == task_files[name].read_bytes(), name


def test_task_files_record_their_derivation_and_source(packed, task_files):
    info = read_info(task_files["sr4"])
    assert info["dataset"] == "sr4" and info["paired"] is True and info["input_shape"] == [1, 7, 7]
    assert info["task"]["kind"] == "super_resolution" and info["task"]["factor"] == 4
    assert info["task"]["source_md5"] == hashlib.md5(packed.read_bytes()).hexdigest()
    blend = read_info(task_files["fm-m"])["task"]
    assert blend["photographs_sha256"] == photographs()[1]


def test_paired_tasks_pair_row_for_row(packed, task_files):
    images, labels = read_split(packed, "train")
    edges, _ = read_inputs(task_files["paired-edges"], "train")
    targets, target_labels = read_split(task_files["paired-edges"], "train")
    assert np.array_equal(targets, images) and np.array_equal(target_labels, labels)
    assert np.array_equal(edges, edge_maps(images, 0.25))
    assert set(np.unique(edges)) <= {0, 255} and (edges == 0).any() and (edges == 255).any()
    lr, _ = read_inputs(task_files["sr4"], "train")
    assert lr.shape == (96, 1, 7, 7) and np.array_equal(lr, downsample(images, 4))
    assert lr[0, 0, 0, 0] == round(images[0, 0, :4, :4].mean())


def test_inpainting_paints_only_the_centre_square(packed, task_files):
    images, _ = read_split(packed, "test")
    masked, _ = read_inputs(task_files["inpaint"], "test")
    lo, hi = mask_box(28, 14)
    assert (lo, hi) == (7, 21)
    inside = np.zeros((28, 28), bool)
    inside[lo:hi, lo:hi] = True
    assert (masked[:, :, inside] == 255).all()
    assert np.array_equal(masked[:, :, ~inside], images[:, :, ~inside])


def test_unpaired_tasks_split_disjoint_domains_and_blend_keeps_source_labels(packed, task_files):
    images, labels = read_split(packed, "train")
    inputs, input_labels = read_inputs(task_files["unpaired-edges"], "train")
    targets, _ = read_split(task_files["unpaired-edges"], "train")
    assert np.array_equal(inputs, edge_maps(images[0::2], 0.25)) and np.array_equal(targets, images[1::2])
    assert input_labels is None
    sources, source_labels = read_inputs(task_files["fm-m"], "train")
    blended, blended_labels = read_split(task_files["fm-m"], "train")
    assert np.array_equal(sources, images[0::2]) and np.array_equal(source_labels, labels[0::2])
    assert blended.shape == (48, 3, 28, 28) and np.array_equal(blended_labels, labels[1::2])
    # |photo - image|: where the image is bright the blend is dark in every channel, and the colours differ
    bright = images[1::2, 0] == 200
    assert (blended.transpose(1, 0, 2, 3)[:, bright] <= 200).all()
    assert (blended[:, 0] != blended[:, 1]).any()
    with h5py.File(task_files["fm-m"]) as f:
        assert not bool(f.attrs["paired"])


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("raw, message", [
    ({"tasks": {"t": {"dataset": "cifar10", "kind": "edges"}}},
     "tasks.t.dataset: got 'cifar10'; allowed values (the datasets under `datasets:`): fashion-mnist"),
    ({"tasks": {"t": {"dataset": "fashion-mnist", "kind": "super_resolution", "factor": 3}}},
     "tasks.t.factor: factor 3 does not divide the image side 28; allowed: a divisor of 28 >= 2"),
    ({"tasks": {"t": {"dataset": "fashion-mnist", "kind": "inpainting", "mask": 28}}},
     "tasks.t.mask: mask 28 is not smaller than the image (28x28); allowed: 1 to 27"),
    ({"tasks": {"t": {"dataset": "fashion-mnist", "kind": "sketch"}}},
     "tasks.t.kind: got 'sketch'; allowed values: edges, super_resolution, inpainting, blend, own"),
    ({"tasks": {"fashion-mnist": {"dataset": "fashion-mnist", "kind": "edges"}}},
     "tasks.fashion-mnist: a task may not take the name of a dataset under `datasets:`; rename it"),
    ({"models": {"c": {"type": "cyclegan", "dataset": "paired-edges"}}},
     "models.c.dataset: type cyclegan cannot train on task paired-edges (edges task over fashion-mnist (paired)): "
     "it needs an unpaired task (an edges task with `paired: false`)"),
    ({"models": {"p": {"type": "pix2pix", "dataset": "unpaired-edges"}}},
     "models.p.dataset: type pix2pix cannot train on task unpaired-edges (edges task over fashion-mnist "
     "(unpaired)): it needs a paired task"),
    ({"models": {"p": {"type": "pix2pix", "dataset": "sr4"}}},
     "models.p.dataset: type pix2pix cannot train on task sr4 (super_resolution task over fashion-mnist (paired)): "
     "its generator keeps the image size, and this task's inputs and targets differ in size"),
    ({"models": {"s": {"type": "srgan", "dataset": "inpaint"}}},
     "models.s.dataset: type srgan cannot train on task inpaint (inpainting task over fashion-mnist (paired)): "
     "it needs a task of kind super_resolution"),
    ({"models": {"p": {"type": "pix2pix", "dataset": "fashion-mnist"}}},
     "models.p.dataset: got 'fashion-mnist'; type pix2pix translates images, so it trains on a task under "
     "`tasks:`; allowed values: paired-edges, unpaired-edges, sr4, inpaint, fm-m"),
    ({"models": {"g": {"type": "gan", "dataset": "sr4"}}},
     "models.g.dataset: got 'sr4'; allowed values (the datasets under `datasets:`): fashion-mnist; "
     "paired-edges, unpaired-edges, sr4, inpaint, fm-m are tasks, for image-to-image types"),
])
def test_bad_tasks_and_mismatched_models_are_refused_with_the_key(raw, message):
    with pytest.raises(ParamsError) as err:
        params(**raw)
    assert str(err.value) == message


# --------------------------------------------------------------------------- the models
def model_for(kind: str, task_files, **hparams):
    spec = params({"m": {"type": kind, "dataset": TASK_OF[kind], **SMALL[kind], **hparams}}).models["m"]
    data = open_train_data(task_files[TASK_OF[kind]], device="cpu", memory_budget_bytes=1 << 30, shuffle_buffer=1 << 16)
    torch.manual_seed(0)
    model = build_model(spec, data.image_shape, 10, data.input_shape)
    task = read_info(task_files[TASK_OF[kind]])["task"]
    model.prepare(StageResources(task, None)) if kind != "srgan" else None
    return model, data


@pytest.fixture(scope="module")
def classifier_file(packed, tmp_path_factory):
    from genlab.metrics.classifier import train_classifier

    path = tmp_path_factory.mktemp("clf") / "fashion-mnist.pt"
    train_classifier(packed, path, epochs=1, batch_size=32, lr=1e-3, seed=0, device=torch.device("cpu"),
                     limit=None, min_accuracy=0.0)
    return path


def first_batch(data, n=8):
    return next(data.batches(data.epoch_order(torch.Generator().manual_seed(0)), n, 1))


@pytest.mark.parametrize("kind", TRANSLATION_TYPES)
def test_translate_shape_range_and_one_step_changes_every_network(kind, task_files, classifier_file):
    model, data = model_for(kind, task_files)
    if kind == "srgan":
        used = model.prepare(StageResources(None, classifier_file))
        assert used["model.content_features_used"].startswith("dataset classifier conv block 2 (fashion-mnist.pt")
    images, labels = first_batch(data)
    out = model.sample(Prompts(8, inputs=images[0]), torch.Generator().manual_seed(0))
    assert out.images.shape == (8, *model.image_shape) and out.images.dtype == torch.uint8
    assert out.images.float().std() > 0 and torch.equal(out.inputs, images[0])
    assert ("reconstructions" in out.extras) == model.cycle
    # `classifies` says whether it has a task classifier (what the sample stage asks), and it is right
    assert (model.classify(model.to_input(images[1][:2])) is not None) == model.classifies == (kind == "pixelda")
    before = {name: [p.detach().clone() for p in getattr(model, name).parameters()] for name in NETWORKS[kind]}
    optimizers = model.configure_optimizers()
    model.train()
    metrics = model.training_step(model.to_input(images), labels, optimizers, 0)
    assert set(metrics) == set(model.metric_names) and {"loss_g", "loss_d", "real_score", "fake_score"} <= set(metrics)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in metrics.values())
    for name, params_before in before.items():
        after = list(getattr(model, name).parameters())
        assert any(not torch.equal(a, b) for a, b in zip(after, params_before)), f"{kind}: {name} did not change"


def test_pix2pix_discriminator_scores_patches(task_files):
    model, data = model_for("pix2pix", task_files)
    (a, b), _ = first_batch(data)
    out = model.D(torch.cat(model.to_input((a, b)), 1))
    assert out.shape == (8, 1, 7, 7)  # one score per patch of the 28x28 pair, not one per image


def test_cycle_losses_vanish_for_identity_generators(task_files):
    model, data = model_for("cyclegan", task_files)
    model.G_AB, model.G_BA = torch.nn.Identity(), torch.nn.Identity()
    x = model.to_input(first_batch(data)[0])
    total, parts = model.generator_losses(*x, fake_a=x[1], fake_b=x[0])
    assert parts["loss_cycle"] == 0 and parts["loss_identity"] == 0 and total == 0
    disco, data = model_for("discogan", task_files)
    disco.G_AB, disco.G_BA = torch.nn.Identity(), torch.nn.Identity()
    assert disco.generator_losses(*x, fake_a=x[1], fake_b=x[0])[1]["loss_reconstruction"] == 0


def test_ccgan_fills_the_masked_square_alone(task_files):
    model, data = model_for("ccgan", task_files)
    (masked, _), _ = first_batch(data)
    out = model.translate(model.to_input(masked))
    x = model.to_input(masked)
    lo, hi = mask_box(28, 14)
    outside = torch.ones(28, 28, dtype=torch.bool)
    outside[lo:hi, lo:hi] = False
    assert torch.equal(out[..., outside], x[..., outside])
    assert not torch.equal(out[..., ~outside], x[..., ~outside])
    assert model.state_dict()["mask"].sum() == 14 * 14  # saved with the model, for the sample stage


def test_pixelda_classifier_learns_from_translated_images(task_files):
    model, data = model_for("pixelda", task_files)
    seen = []
    model.C.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    generated = []
    model.G.register_forward_hook(lambda module, inputs, output: generated.append(output.detach()))
    images, labels = first_batch(data)
    assert labels is not None and torch.equal(labels, torch.from_numpy(read_inputs(
        data_path := task_files["fm-m"], "train")[1]).index_select(0, data.epoch_order(
            torch.Generator().manual_seed(0))[0][:8]))
    model.training_step(model.to_input(images), labels, model.configure_optimizers(), 0)
    assert any(torch.equal(s, generated[0]) for s in seen), "C never saw G's translations"
    assert data_path.exists()


def test_task_loader_pairs_rows_and_draws_unpaired_domains_separately(task_files):
    paired = open_train_data(task_files["paired-edges"], device="cpu", memory_budget_bytes=1 << 30,
                             shuffle_buffer=1 << 16)
    (a, b), _ = first_batch(paired, 16)
    assert torch.equal(a, torch.from_numpy(edge_maps(b.numpy(), 0.25)))
    unpaired = open_train_data(task_files["unpaired-edges"], device="cpu", memory_budget_bytes=1 << 30,
                               shuffle_buffer=1 << 16)
    order = unpaired.epoch_order(torch.Generator().manual_seed(0))
    assert order.shape == (2, 48) and not torch.equal(order[0], order[1])
    with pytest.raises(ValueError, match="raise data.memory_budget_mb"):
        open_train_data(task_files["paired-edges"], device="cpu", memory_budget_bytes=1000, shuffle_buffer=1 << 16)


# --------------------------------------------------------------------------- train, then sample
def test_train_then_sample_writes_inputs_outputs_targets(task_files, classifier_file, tmp_path, store):
    from genlab.sampling.sample import draw_samples
    from genlab.models.files import load_model
    from genlab.training.loop import train_model

    p = params({"m": {"type": "cyclegan", "dataset": "unpaired-edges", "epochs": 1, "steps_per_epoch": 2,
                      "batch_size": 8, **SMALL["cyclegan"]}},
               train={"device": "cpu", "log_every": 1, "grid_size": 24})
    train_model(p, "m", task_files["unpaired-edges"], tmp_path / "m", tmp_path / "m.csv", classifier_file)
    model = load_model(tmp_path / "m")
    assert model.input_shape == (1, 28, 28)
    samples = draw_samples(model, 10, 4, 0, task_files["unpaired-edges"]).arrays()
    assert list(samples) == ["images", "reconstructions", "inputs", "targets"]  # the samples file's order
    assert all(v.shape == (10, 1, 28, 28) and v.dtype == torch.uint8 for v in samples.values())
    again = draw_samples(model, 10, 4, 0, task_files["unpaired-edges"]).arrays()
    assert all(torch.equal(samples[k], again[k]) for k in samples)
    header = (tmp_path / "m.csv").read_text().splitlines()[0]
    assert header == "step,loss_d,loss_g,real_score,fake_score,loss_cycle,loss_identity"


def test_pixelda_samples_carry_its_predictions_of_every_target(task_files):
    from genlab.sampling.sample import draw_samples, task_predictions

    model, _ = model_for("pixelda", task_files)
    model.eval()
    samples = draw_samples(model, 8, 4, 0, task_files["fm-m"])
    assert samples.images.shape == (8, 3, 28, 28) and samples.inputs.shape == (8, 1, 28, 28)
    assert samples.info() == {"translation": True, "paired": False}
    predictions = task_predictions(model, task_files["fm-m"], 4)
    assert predictions["task_predictions"].shape == predictions["task_labels"].shape == (16,)


def test_every_translation_type_is_registered_with_its_paper():
    for kind in TRANSLATION_TYPES:
        cls = MODEL_TYPES[kind]
        assert cls.trains_on == "task" and "20" in (cls.__doc__ or ""), kind


# --------------------------------------------------------------------------- a task's real-data side
def test_task_features_reuse_the_datasets_where_the_targets_are_its_images(packed, task_files, tmp_path, monkeypatch):
    from genlab.metrics import evaluate
    from genlab.metrics.features import load_features, save_features
    from genlab.metrics.tasks import task_features

    cfg = {"num_real": 16, "batch_size": 8, "precision": "fp32", "device": "cpu", "runtime": "auto"}
    dataset_features = tmp_path / "fashion-mnist-test-n16.h5"
    feats = np.random.default_rng(0).normal(size=(16, 2048)).astype(np.float32)
    save_features(dataset_features, feats, {"N": 16, "dataset": "fashion-mnist", "split": "test", "precision": "fp32",
                                            "runtime": evaluate.eval_settings(cfg)[2], "extractor": "x"})
    protocol = task_features(task_files["sr4"], packed, dataset_features, tmp_path / "sr4.h5", cfg)
    reused, saved = load_features(tmp_path / "sr4.h5")
    assert np.array_equal(reused, feats) and saved == protocol
    assert protocol["dataset"] == "sr4" and protocol["same_images_as"] == "fashion-mnist/test (features reused)"
    computed = []
    monkeypatch.setattr(evaluate, "compute_real_features", lambda *args: computed.append(args) or {"computed": True})
    assert task_features(task_files["unpaired-edges"], packed, dataset_features, tmp_path / "u.h5", cfg) == {"computed": True}
    assert computed[0][0] == task_files["unpaired-edges"]  # odd rows: other images, their own features


def test_task_classifier_is_the_datasets_copied_or_none_for_a_new_domain(task_files, classifier_file, tmp_path):
    from genlab.metrics.classifier import load_classifier
    from genlab.metrics.features import load_features
    from genlab.metrics.tasks import task_evaluator

    record = task_evaluator(task_files["inpaint"], classifier_file, tmp_path / "w.pt", tmp_path / "f.h5")
    assert (tmp_path / "w.pt").read_bytes() == classifier_file.read_bytes()
    assert record["classifier"] == "fashion-mnist.pt (the dataset's, copied)" and 0 <= record["test_accuracy"] <= 1
    assert load_features(tmp_path / "f.h5")[0].shape == (32, 128)
    record = task_evaluator(task_files["fm-m"], classifier_file, tmp_path / "w2.pt", tmp_path / "f2.h5")
    assert "classifier" not in record and record["test_accuracy"] is None and "blend" in record["reason"]
    model, meta = load_classifier(tmp_path / "w2.pt")
    assert model is None and meta["reason"] == record["reason"]
