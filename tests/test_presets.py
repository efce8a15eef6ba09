"""`genlab preset`: the presets under configs/ validate and keep the papers' values; the command writes
params.yaml byte for byte, refuses to overwrite uncommitted changes, and names the allowed presets."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from genlab.__main__ import main
from genlab.config import load_params
from genlab.models import MODEL_TYPES
from genlab.presets import PRESETS
from projects import git

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / PRESETS["paper-scale"].file
# Lucic et al. 2018's best Fashion-MNIST FIDs (VAE: Dai & Wipf 2019) are quoted for these types.
COMPARED = {"gan", "lsgan", "wgan", "wgan_gp", "dragan", "vae"}
OLD_PARAMS = "# the params a user had\nseed: 1\n"


def type_default(kind: str, key: str):
    """A model type's default for `key`, as genlab.config resolves a key left out of an entry."""
    cls = MODEL_TYPES[kind]
    if key in cls.defaults:
        return cls.defaults[key]
    if key in cls.hparam_fields:
        return cls.hparam_fields[key].default
    from genlab.config import COMMON_MODEL_FIELDS

    return COMMON_MODEL_FIELDS[key].default


def test_every_preset_validates_and_keeps_the_pipeline_keys():
    for name, preset in PRESETS.items():
        path = REPO / preset.file
        load_params(path)  # raises ParamsError on any bad key or value
        raw = yaml.safe_load(path.read_text())
        for key in ("datasets", "tasks", "models", "seeds", "report"):  # dvc.yaml's foreach and params keys
            assert key in raw, f"{name}: no `{key}:`"


def test_the_study_is_paper_scale_over_ten_seeds_with_inception_for_every_seed():
    study, paper = load_params(REPO / PRESETS["study"].file), load_params(PAPER)
    assert study.seeds == tuple(range(10)) and paper.seeds == (0,)
    assert study.eval["num_fake"] == study.sample["num_samples"] == study.eval["num_real"] == 10000
    assert study.eval["inception_seeds"] is None and study.eval["fid_inf"] is True
    assert study.models == paper.models and study.train == paper.train  # the same models and budgets
    assert study.report["rank_by"] == "classifier_kid"


def test_paper_scale_follows_the_protocol():
    params = load_params(PAPER)
    assert params.train["device"] == "cuda" and params.train["precision"] == "fp32"
    assert params.sample["num_samples"] == 10000 and params.eval["num_real"] == 10000
    assert params.eval["precision"] == "fp32"
    assert params.data["train_limit"] is None
    assert params.tasks == {}
    assert COMPARED <= set(params.models)
    noise_to_image = {name for name, cls in MODEL_TYPES.items() if cls.trains_on == "dataset"}
    assert {spec.type for spec in params.models.values()} == noise_to_image
    for name, spec in params.models.items():
        cls = MODEL_TYPES[spec.type]
        assert (spec.dataset, spec.epochs, spec.batch_size, spec.steps_per_epoch) == ("fashion-mnist", 20, 64, None), name
        # the papers' learning rates and betas are the types' registry defaults
        assert spec.lr == type_default(spec.type, "lr"), name
        assert spec.hparams["betas"] == tuple(type_default(spec.type, "betas")), name
        if "arch" in cls.hparam_fields:
            assert spec.hparams["arch"] == ("conv" if "conv" in cls.hparam_fields["arch"].choices else "mlp"), name
        if "width" in cls.hparam_fields:
            assert spec.hparams["width"] == 64, name
    raw = yaml.safe_load(PAPER.read_text())
    assert not [name for name, entry in raw["models"].items() if "steps_per_epoch" in entry]  # full epochs


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with the presets under configs/ and a committed params.yaml."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    (tmp_path / "params.yaml").write_text(OLD_PARAMS)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "params")
    return tmp_path


def test_preset_writes_params_byte_for_byte(project: Path, capsys):
    assert main(["preset", "paper-scale", "--repo", str(project)]) == 0
    assert (project / "params.yaml").read_bytes() == PAPER.read_bytes()
    assert "wrote" in capsys.readouterr().out
    assert not list(project.glob(".params.yaml.*"))  # no temp file left beside it
    # again: params.yaml now differs from the commit, but holds nothing the preset would lose
    assert main(["preset", "paper-scale", "--repo", str(project)]) == 0
    assert "already is preset paper-scale" in capsys.readouterr().out


def test_preset_refuses_a_dirty_params_yaml(project: Path, capsys):
    (project / "params.yaml").write_text(OLD_PARAMS + "seed: 2  # not committed\n")
    assert main(["preset", "paper-scale", "--repo", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uncommitted changes" in err and "--force" in err
    assert (project / "params.yaml").read_text().endswith("# not committed\n")  # untouched

    assert main(["preset", "paper-scale", "--force", "--repo", str(project)]) == 0
    assert (project / "params.yaml").read_bytes() == PAPER.read_bytes()


def test_preset_refuses_an_untracked_params_yaml(project: Path, capsys):
    git(project, "rm", "-q", "--cached", "params.yaml")
    git(project, "commit", "-q", "-m", "untrack")
    assert main(["preset", "paper-scale", "--repo", str(project)]) == 2
    assert "uncommitted changes" in capsys.readouterr().err
    assert (project / "params.yaml").read_text() == OLD_PARAMS


def test_preset_refuses_outside_git_unless_forced(tmp_path: Path, capsys):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    (tmp_path / "params.yaml").write_text(OLD_PARAMS)
    assert main(["preset", "paper-scale", "--repo", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "params.yaml").read_text() == OLD_PARAMS
    assert main(["preset", "paper-scale", "--force", "--repo", str(tmp_path)]) == 0
    assert (tmp_path / "params.yaml").read_bytes() == PAPER.read_bytes()


def test_an_invalid_preset_is_not_written(project: Path, capsys):
    text = PAPER.read_text().replace("    epochs: 20\n", "    epochs: 0\n", 1)
    (project / "configs" / "paper-scale.yaml").write_text(text)
    assert main(["preset", "paper-scale", "--force", "--repo", str(project)]) == 2
    err = capsys.readouterr().err
    assert "models.gan.epochs" in err and "paper-scale.yaml" in err
    assert (project / "params.yaml").read_text() == OLD_PARAMS

    (project / "configs" / "paper-scale.yaml").write_text(PAPER.read_text().replace("tasks: {}\n", ""))
    assert main(["preset", "paper-scale", "--force", "--repo", str(project)]) == 2
    assert "no `tasks:` key" in capsys.readouterr().err
    assert (project / "params.yaml").read_text() == OLD_PARAMS


def test_unknown_preset_lists_the_allowed_names(capsys):
    assert main(["preset", "paper-scal"]) == 2
    err = capsys.readouterr().err
    assert err == "error: unknown preset 'paper-scal'; allowed names: " + ", ".join(PRESETS) + "\n"
    assert main(["preset", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out and preset.file in out for name, preset in PRESETS.items())
