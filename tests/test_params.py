"""params.yaml validation at the edge: every bad value is refused with a message naming the key,
the value and what is allowed; defaults come from the model type; the stage CLI stops before
any work with exit code 2."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.config import Field, ParamsError, load_params, parse_params
from genlab.models import MODEL_TYPES

REPO = Path(__file__).resolve().parents[1]


def params_with(model: dict | None = None, **top) -> dict:
    return {"models": {"m": model if model is not None else {"type": "dcgan"}}, **top}


def refused(raw) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    return str(info.value)


# --------------------------------------------------------------------------- refusals
def test_unknown_model_type():
    message = refused(params_with({"type": "dcgam"}))
    assert message.startswith("models.m.type")
    assert "'dcgam'" in message
    allowed = message.split("allowed values:")[1]
    listed = {word.strip() for word in allowed.split(",")}
    assert listed == set(MODEL_TYPES)  # every type, and only types
    assert "dcgan" in listed and "vae" in listed


def test_entry_without_type_uses_its_name_as_the_type():
    assert parse_params({"models": {"wgan": {}}}).models["wgan"].type == "wgan"
    message = refused({"models": {"mymodel": {"epochs": 2}}})
    assert "models.mymodel.type" in message and "'mymodel'" in message and "dcgan" in message


@pytest.mark.parametrize("bad", [["dcgan"], {"name": "dcgan"}])
def test_non_string_model_type(bad):
    message = refused(params_with({"type": bad}))
    assert "models.m.type" in message


def test_non_string_hashable_model_type():
    message = refused(params_with({"type": 5}))
    assert "models.m.type" in message and "5" in message and "dcgan" in message


@pytest.mark.parametrize("lr", [-1e-3, 0, 0.0])
def test_non_positive_lr(lr):
    message = refused(params_with({"type": "dcgan", "lr": lr}))
    assert message.startswith("models.m.lr:")
    assert repr(float(lr)) in message or repr(lr) in message
    assert "> 0" in message


@pytest.mark.parametrize("lr", [float("nan"), float("inf")])
def test_non_finite_lr(lr):
    message = refused(params_with({"type": "dcgan", "lr": lr}))
    assert message.startswith("models.m.lr:") and "finite" in message


def test_unknown_dataset():
    message = refused(params_with(data={"dataset": "fashion_mnist"}))
    assert message.startswith("data.dataset")
    assert "'fashion_mnist'" in message
    assert "fashion-mnist" in message.split("allowed values:")[1]


def test_unknown_key_in_model_entry():
    message = refused(params_with({"type": "wgan", "clip": 0.02}))
    assert message.startswith("models.m.clip:")
    assert "unknown key" in message
    allowed = {word.strip() for word in message.split("allowed keys:")[1].split(",")}
    assert {"type", "epochs", "batch_size", "lr", "clip_value", "n_critic", "betas"} <= allowed
    assert "clip" not in allowed
    # the keys allowed depend on the type
    vae_message = refused(params_with({"type": "vae", "clip_value": 0.01}))
    assert vae_message.startswith("models.m.clip_value:")
    assert "kl_weight" in vae_message and "n_critic" not in vae_message


def test_unknown_top_level_and_section_keys():
    message = refused(params_with(modles={}))
    assert message.startswith("modles") and "models" in message
    message = refused(params_with(train={"devise": "cpu"}))
    assert message.startswith("train.devise") and "device" in message


@pytest.mark.parametrize("value,kind_word", [("10", "(str)"), (2.5, "(float)"), (True, "(bool)"), ([3], "(list)")])
def test_wrong_type_for_epochs(value, kind_word):
    message = refused(params_with({"type": "dcgan", "epochs": value}))
    assert message.startswith("models.m.epochs:")
    assert repr(value) in message and kind_word in message
    assert "an integer > 0" in message


def test_whole_floats_and_ints_are_accepted_where_unambiguous():
    spec = parse_params(params_with({"type": "dcgan", "epochs": 3.0, "lr": 1})).models["m"]
    assert spec.epochs == 3 and isinstance(spec.epochs, int)
    assert spec.lr == 1.0 and isinstance(spec.lr, float)


@pytest.mark.parametrize("betas,key,limit", [
    ([0.5, 1.0], "betas[1]", "< 1.0"),
    ([0.5, 1.5], "betas[1]", "< 1.0"),
    ([-0.1, 0.9], "betas[0]", ">= 0.0"),
])
def test_betas_out_of_range(betas, key, limit):
    message = refused(params_with({"type": "dcgan", "betas": betas}))
    assert message.startswith(f"models.m.{key}:")
    assert limit in message


@pytest.mark.parametrize("betas", [[0.5], [0.5, 0.9, 0.99], 0.5, "0.5, 0.9"])
def test_betas_wrong_shape(betas):
    message = refused(params_with({"type": "dcgan", "betas": betas}))
    assert message.startswith("models.m.betas:") and "2 numbers" in message


@pytest.mark.parametrize("raw", [{"models": {}}, {}, {"models": None}, {"models": ["dcgan"]}])
def test_empty_or_missing_models(raw):
    message = refused(raw)
    assert message.startswith("models:")


@pytest.mark.parametrize("name", ["a b", "m/1", "x.y", ""])
def test_bad_model_names(name):
    message = refused({"models": {name: {"type": "dcgan"}}})
    assert f"models.{name}" in message and "letters, digits" in message


@pytest.mark.parametrize("raw,key", [
    ({"seed": -1}, "seed"),
    ({"train": {"device": "tpu"}}, "train.device"),
    ({"eval": {"precision": "fp16"}}, "eval.precision"),
    ({"sample": {"num_samples": 0}}, "sample.num_samples"),
    ({"data": {"train_limit": -5}}, "data.train_limit"),
])
def test_other_sections_validated(raw, key):
    assert refused(params_with(**raw)).startswith(f"{key}:")


def test_type_specific_limits():
    assert refused(params_with({"type": "sgan", "labeled_fraction": 1.5})).startswith("models.m.labeled_fraction:")
    assert refused(params_with({"type": "aae", "adv_weight": 1.0})).startswith("models.m.adv_weight:")
    assert refused(params_with({"type": "wgan", "optimizer": "sgd"})).startswith("models.m.optimizer:")
    assert refused(params_with({"type": "dcgan", "arch": "resnet"})).startswith("models.m.arch:")
    message = refused(params_with({"type": "wgan_gp", "penalty": "l2"}))
    assert message.startswith("models.m.penalty:") and "wgan_gp" in message and "dragan" in message


def test_field_check_directly():
    field = Field(int, 1, positive=True)
    assert field.check("k", 4) == 4
    with pytest.raises(ParamsError, match=r"^k: got 0; expected a number > 0$"):
        field.check("k", 0)
    with pytest.raises(ParamsError, match=r"^k: got null"):
        field.check("k", None)
    assert Field(int, None, nullable=True).check("k", None) is None
    with pytest.raises(ParamsError, match=r"allowed values: a, b"):
        Field(str, "a", choices=("a", "b")).check("k", "c")


def test_unknown_model_name_lookup():
    params = parse_params(params_with())
    with pytest.raises(ParamsError, match=r"models\.other: not in params\.yaml; defined models: m"):
        params.model("other")


# --------------------------------------------------------------------------- defaults
def test_type_defaults_fill_a_bare_entry():
    models = parse_params({"models": {name: {"type": name} for name in ("wgan", "wgan_gp", "dcgan", "cgan",
                                                                        "ae", "vae", "aae", "dragan")}}).models
    wgan = models["wgan"]
    assert wgan.lr == 5e-5
    assert wgan.hparams["n_critic"] == 5
    assert wgan.hparams["clip_value"] == 0.01
    assert wgan.hparams["optimizer"] == "rmsprop"
    assert wgan.hparams["penalty"] == "none"

    wgan_gp = models["wgan_gp"]
    assert wgan_gp.hparams["betas"] == (0.0, 0.9)
    assert wgan_gp.lr == 1e-4
    assert wgan_gp.hparams["n_critic"] == 5
    assert wgan_gp.hparams["penalty"] == "wgan_gp"
    assert wgan_gp.hparams["clip_value"] is None

    dcgan = models["dcgan"]
    assert (dcgan.lr, dcgan.epochs, dcgan.batch_size) == (2e-4, 1, 64)
    assert dcgan.hparams["betas"] == (0.5, 0.999)
    assert dcgan.hparams["arch"] == "conv" and dcgan.hparams["latent_dim"] == 100
    assert models["cgan"].batch_size == 100 and models["cgan"].hparams["arch"] == "mlp"
    assert models["ae"].lr == 1e-3 and models["ae"].hparams["latent_dim"] == 8
    assert models["vae"].hparams["kl_weight"] == 1.0
    assert models["aae"].hparams["latent_dim"] == 10 and models["aae"].hparams["adv_weight"] == 0.001
    assert models["dragan"].hparams["penalty"] == "dragan"


# Each image-to-image type on a task it accepts (the others train on a dataset).
TASK_FOR = {"pix2pix": "e", "ccgan": "i", "cyclegan": "u", "discogan": "u", "dualgan": "u", "srgan": "s", "pixelda": "b"}
TASKS = {"e": {"dataset": "fashion-mnist", "kind": "edges"}, "i": {"dataset": "fashion-mnist", "kind": "inpainting"},
         "u": {"dataset": "fashion-mnist", "kind": "edges", "paired": False},
         "s": {"dataset": "fashion-mnist", "kind": "super_resolution"}, "b": {"dataset": "fashion-mnist", "kind": "blend"}}


def test_every_type_parses_bare_and_flat_round_trips():
    for kind in MODEL_TYPES:
        entry = {"type": kind, **({"dataset": TASK_FOR[kind]} if MODEL_TYPES[kind].trains_on == "task" else {})}
        spec = parse_params({"tasks": TASKS, "models": {"m": entry}}).models["m"]
        assert spec.type == kind and spec.name == "m"
        assert set(spec.hparams) == set(MODEL_TYPES[kind].hparam_fields)
        again = parse_params({"tasks": TASKS, "models": {"m": dict(spec.flat())}}).models["m"]
        assert again == spec


def test_user_values_override_type_defaults():
    spec = parse_params(params_with({"type": "wgan", "lr": 1e-4, "n_critic": 2, "clip_value": 0.05})).models["m"]
    assert spec.lr == 1e-4 and spec.hparams["n_critic"] == 2 and spec.hparams["clip_value"] == 0.05
    # and one type's defaults do not leak into another's
    other = parse_params(params_with({"type": "dcgan"})).models["m"]
    assert other.lr == 2e-4 and other.hparams["n_critic"] == 1


def test_section_defaults():
    params = parse_params(params_with())
    assert params.seed == 0
    assert params.data == {"dataset": "fashion-mnist", "train_limit": None, "memory_budget_mb": 4096,
                           "shuffle_buffer": 65536}
    assert list(params.datasets) == ["fashion-mnist"]  # no `datasets:`: the one data.dataset names
    assert params.datasets["fashion-mnist"].preprocessing.side == 28
    assert params.train["device"] == "auto" and params.train["precision"] == "fp32"


def test_load_params_reads_yaml_and_reports_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("models:\n  m:\n    type: wgan\n    epochs: 3\n")
    spec = load_params(tmp_path / "params.yaml").model("m")
    assert spec.epochs == 3 and spec.lr == 5e-5
    (tmp_path / "params.yaml").write_text("models: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_repository_params_yaml_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.models


# --------------------------------------------------------------------------- stage CLI
@pytest.mark.slow
def test_train_stage_exits_2_before_any_work(tmp_path):
    (tmp_path / "params.yaml").write_text("models:\n  m:\n    type: dcgam\n    epochs: 1\n")
    result = subprocess.run([sys.executable, str(REPO / "pipeline" / "train.py"), "m", "data/packed/x.h5",
                             "data/evaluator/x.pt", "models/m", "plots/train/m.csv"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "models.m.type" in result.stderr
    assert "'dcgam'" in result.stderr
    assert re.search(r"allowed values: .*dcgan.*vae", result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line
    # nothing was created: no models/, no plots/, no mlflow.db
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_conditional_mlp_type_rejects_conv_arch():
    with pytest.raises(ParamsError, match=r"models\.m\.arch: got 'conv'; allowed values: mlp"):
        parse_params({"models": {"m": {"type": "cgan", "arch": "conv"}}})


def test_class_head_types_reject_options_they_do_not_use():
    with pytest.raises(ParamsError, match=r"models\.m\.penalty: unknown key"):
        parse_params({"models": {"m": {"type": "acgan", "penalty": "wgan_gp"}}})


def test_float_written_without_a_dot_is_accepted():
    assert parse_params({"models": {"m": {"type": "vae", "lr": "1e-3"}}}).models["m"].lr == 1e-3


# --------------------------------------------------------------------------- datasets
def with_datasets(datasets: dict, models: dict | None = None, **data) -> dict:
    return {"data": data, "datasets": datasets, "models": models or {"m": {"type": "dcgan"}}}


def test_datasets_take_registry_defaults_and_overrides():
    params = parse_params(with_datasets(
        {"fashion-mnist": {}, "lfw": {"pack": {"side": 32}}, "celeba": {"download": {"source": "/mirror"}}},
        dataset="fashion-mnist"))
    lfw, celeba = params.datasets["lfw"], params.datasets["celeba"]
    assert (lfw.preprocessing.side, lfw.preprocessing.crop, lfw.preprocessing.test_fraction) == (32, 90, 0.1)
    assert lfw.image_shape == (3, 32, 32) and lfw.num_classes == 0
    assert celeba.preprocessing.crop == 178 and celeba.source == "/mirror"
    assert params.datasets["fashion-mnist"].image_shape == (1, 28, 28)


def test_model_dataset_defaults_to_data_dataset_and_must_be_listed():
    params = parse_params(with_datasets({"fashion-mnist": {}, "mnist": {}},
                                        {"a": {"type": "dcgan"}, "b": {"type": "vae", "dataset": "mnist"}}))
    assert params.models["a"].dataset == "fashion-mnist" and params.models["b"].dataset == "mnist"
    assert params.models["b"].flat()["dataset"] == "mnist"  # recorded with the model's params
    message = refused(with_datasets({"fashion-mnist": {}}, {"m": {"type": "dcgan", "dataset": "lfw"}}))
    assert message.startswith("models.m.dataset") and "'lfw'" in message and "fashion-mnist" in message


@pytest.mark.parametrize("datasets, key", [
    ({"lfw2": {}}, "datasets.lfw2"),
    ({"lfw": {"side": 64}}, "datasets.lfw.side"),  # preprocessing lives under `pack:`
    ({"lfw": {"pack": {"side": 4}}}, "datasets.lfw.pack.side"),
    ({"lfw": {"pack": {"resample": "cubic"}}}, "datasets.lfw.pack.resample"),
    ({"lfw": {"pack": {"test_fraction": 1.5}}}, "datasets.lfw.pack.test_fraction"),
    ({"mnist": {"pack": {"test_fraction": 0.1}}}, "datasets.mnist.pack.test_fraction"),  # has an official split
    ({"lfw": {"download": {"checksums": {"archive": "abc"}}}}, "datasets.lfw.download.checksums.archive"),
    ({"lfw": {"download": {"checksums": {"images": "md5:00"}}}}, "datasets.lfw.download.checksums.images"),
    ({"lfw": {"download": {"checksums": ["md5:00"]}}}, "datasets.lfw.download.checksums"),
    ([], "datasets"),
])
def test_bad_dataset_entries(datasets, key):
    message = refused(with_datasets(datasets, {"m": {"type": "dcgan", "dataset": "lfw"}}, dataset="lfw")
                      if isinstance(datasets, dict) and "lfw" in datasets
                      else with_datasets(datasets))
    assert message.startswith(key), message


def test_data_dataset_must_be_listed_under_datasets():
    message = refused(with_datasets({"mnist": {}}, dataset="fashion-mnist"))
    assert message.startswith("data.dataset") and "mnist" in message and "datasets:" in message


@pytest.mark.parametrize("kind", ["cgan", "acgan", "cvae", "sgan"])
def test_label_needing_types_are_refused_on_unlabelled_faces(kind):
    message = refused(with_datasets({"lfw": {}}, {"m": {"type": kind}}, dataset="lfw"))
    assert message.startswith(f"models.m: type {kind} cannot train on dataset lfw (3x64x64)")
    assert "label" in message


def test_conv_types_are_refused_on_sides_they_cannot_build():
    message = refused(with_datasets({"lfw": {"pack": {"side": 30}}}, {"m": {"type": "dcgan"}}, dataset="lfw"))
    assert message.startswith("models.m: type dcgan cannot train on dataset lfw (3x30x30)")
    parse_params(with_datasets({"lfw": {"pack": {"side": 30}}}, {"m": {"type": "gan"}}, dataset="lfw"))  # MLP: fine


def test_every_unconditional_type_accepts_rgb_faces_at_64():
    for kind, cls in MODEL_TYPES.items():
        if not cls.conditional and kind != "sgan" and cls.trains_on == "dataset":
            parse_params(with_datasets({"lfw": {}}, {"m": {"type": kind}}, dataset="lfw"))


def test_download_stage_names_the_known_datasets_for_an_unknown_one(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "pipeline" / "download.py"), "lfw2", "data/raw/lfw2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr  # a name to fix, as from the CLI
    assert result.stderr.strip() == ("error: unknown dataset 'lfw2'; registered datasets: "
                                     "apple2orange, celeba, cifar10, edges2shoes, facades, fashion-mnist, lfw, mnist, mnist-m")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_stage_with_the_wrong_arguments_says_what_dvc_yaml_should_pass(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "pipeline" / "pack.py"), "lfw"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "expected 3 arguments (<dataset> <raw_dir> <out.h5>), got 1: lfw" in result.stderr


def test_data_side_stages_parse_params_without_the_model_registry():
    """download/pack/evaluator/real_features/reference read params with models=False: model entries
    are not validated there, so those stages neither import nor depend on the model code."""
    raw = with_datasets({"fashion-mnist": {}}, {"m": {"type": "no-such-type"}})
    assert parse_params(raw, models=False).datasets["fashion-mnist"].image_shape == (1, 28, 28)
    assert parse_params(raw, models=False).models == {}
    assert refused(raw).startswith("models.m.type")
    code = ("import sys; from genlab.config import parse_params; "
            "parse_params({'models': {'m': {'type': 'dcgan'}}}, models=False); "
            "print(sorted(m for m in sys.modules if m.startswith('genlab.models')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_eval_metrics_is_a_list_of_names_the_evaluating_stages_check_against_the_registry():
    from genlab.metrics.registry import list_valid_metrics, require_valid_metrics

    assert parse_params(params_with({"type": "gan"})).eval["metrics"] is None  # every metric that applies
    chosen = parse_params({**params_with({"type": "gan"}), "eval": {"metrics": ["fid", "kid"]},
                           "report": {"rank_by": "kid_mean"}}).eval["metrics"]
    assert chosen == ("fid", "kid")
    with pytest.raises(ParamsError, match=r"^report.rank_by: got 'classifier_kid'; it is metric classifier_kid's "
                                          r"number and eval.metrics leaves classifier_kid out; add it there$"):
        parse_params({**params_with({"type": "gan"}), "eval": {"metrics": ["fid", "kid"]}})
    require_valid_metrics(chosen)
    with pytest.raises(ParamsError, match=r"^eval.metrics: got 'fid'; expected a list of names or null$"):
        parse_params({**params_with({"type": "gan"}), "eval": {"metrics": "fid"}})
    with pytest.raises(ParamsError) as err:
        require_valid_metrics(("fid", "fdi"))
    assert str(err.value) == f"eval.metrics: unknown metric(s) 'fdi'; valid metrics: {', '.join(list_valid_metrics())}"
    assert {"fid", "psnr", "ssim", "l1", "cycle_l1", "task_accuracy"} <= set(list_valid_metrics())


@pytest.mark.parametrize("seeds, message", [
    ([], r"^seeds: got \[\]; expected a non-empty list of distinct integers >= 0, e.g. \[0, 1, 2\]$"),
    ([0, 1, 1], r"^seeds: got \[0, 1, 1\]; seed 1 is listed twice: each seed is one trained model, list it once$"),
    ([0, "one"], r"^seeds\[1\]: got 'one' \(str\); expected an integer >= 0$"),
    ([0, 1.5], r"^seeds\[1\]: got 1.5 \(float\); expected an integer >= 0$"),
    (3, r"^seeds: got 3; expected a non-empty list"),
])
def test_seeds_are_a_non_empty_list_of_distinct_integers(seeds, message):
    with pytest.raises(ParamsError, match=message):
        parse_params({**params_with({"type": "gan"}), "seeds": seeds})
    with pytest.raises(ParamsError, match=message.replace("^seeds", "^models.m.seeds")):
        parse_params(params_with({"type": "gan", "seeds": seeds}))


def test_a_model_entry_may_set_its_own_seeds():
    params = parse_params({**params_with({"type": "gan", "seeds": [3, 4]}), "seeds": [0, 1, 2]})
    assert params.seeds == (0, 1, 2) and params.seeds_of("m") == (3, 4)
    assert parse_params(params_with({"type": "gan"})).seeds_of("m") == (0,)  # no `seeds`: the one `seed`


def test_rank_by_must_be_a_registered_number_computed_for_every_section():
    with pytest.raises(ParamsError, match=r"^report.rank_by: got 'lpips'; allowed values \(the registered metrics' "
                                          r"numbers\): fid, kid_mean"):
        parse_params({**params_with({"type": "gan"}), "report": {"rank_by": "lpips"}})
    with pytest.raises(ParamsError, match=r"^report.rank_by: got 'psnr'; metric psnr is not computed for section\(s\) "
                                          r"fashion-mnist; allowed values for these sections: fid"):
        parse_params({**params_with({"type": "gan"}), "report": {"rank_by": "psnr"}})


def test_eval_num_fake_is_at_most_the_samples_drawn():
    with pytest.raises(ParamsError, match=r"^eval.num_fake: got 300, more than the 250 samples each model draws "
                                          r"\(sample.num_samples\); use at most 250$"):
        parse_params({**params_with({"type": "gan"}), "sample": {"num_samples": 250}, "eval": {"num_fake": 300}})


def test_an_error_has_one_exit_code_from_a_stage_and_from_the_genlab_command(tmp_path, monkeypatch, capsys):
    from genlab.__main__ import main
    from genlab.errors import EXIT_INPUT

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: [1]\n")
    assert main(["score", str(tmp_path / "images.npz"), "--dataset", "fashion-mnist"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: invalid params.yaml: seed: got [1]") and len(err.strip().splitlines()) == 1
    stage = subprocess.run([sys.executable, str(REPO / "pipeline" / "pack.py"), "x", "raw", "out.h5"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert stage.returncode == EXIT_INPUT and stage.stderr.strip().splitlines() == [err.strip()]
