"""The documentation: the MkDocs site builds with no warning (`--strict`: broken links and anchors fail), the
README stays an overview that names the test command, and the generated reference pages cover the
package's registries: every params key genlab.config accepts, every model type and its hyperparameters,
every dataset, task kind and metric."""
from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genlab import config
from genlab.config import ParamsError, parse_params
from genlab.data.sources import DATASETS
from genlab.data.tasks import TASK_KINDS
from genlab.metrics.registry import list_valid_metrics
from genlab.models import MODEL_TYPES

REPO = Path(__file__).resolve().parents[1]

#: Where each `Field` section of genlab.config sits in params.yaml.
SECTION_PREFIX = {
    "DATA_FIELDS": "data.",
    "TRAIN_FIELDS": "train.",
    "SAMPLE_FIELDS": "sample.",
    "EVAL_FIELDS": "eval.",
    "EVALUATOR_FIELDS": "evaluator.",
    "REPORT_FIELDS": "report.",
    "COMMON_MODEL_FIELDS": "models.<name>.",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def listed(text: str, key: str) -> bool:
    """Whether the page shows `key` as inline code (how the generated tables name keys)."""
    return f"<code>{html.escape(key, quote=False)}</code>" in text


def top_level_keys() -> set[str]:
    """The top-level keys parse_params accepts, from its refusal of an unknown one."""
    with pytest.raises(ParamsError) as info:
        parse_params({"~unknown": None})
    keys = {k.strip() for k in str(info.value).split("allowed keys:", 1)[1].split(",")}
    assert {"seed", "models", "train"} <= keys  # the message still lists them
    return keys


def schema_keys() -> set[str]:
    """Every key of the params schema, as the configuration page writes it (`<name>`: an entry's name)."""
    sections = {name for name in dir(config) if name.endswith("_FIELDS")}
    assert sections == set(SECTION_PREFIX), "a Field section of genlab.config is new or gone: map it here"
    keys = set(top_level_keys())
    for name, prefix in SECTION_PREFIX.items():
        keys |= {prefix + key for key in getattr(config, name)}
    for dataset in DATASETS:
        for section, fields in config.dataset_fields(dataset).items():
            keys |= {f"datasets.<name>.{section}.{key}" for key in fields}
    keys |= {"tasks.<name>.dataset", "tasks.<name>.kind"}
    for kind in TASK_KINDS.values():
        keys |= {f"tasks.<name>.{key}" for key in kind.fields}
    return keys


def test_site_builds_strictly(site):
    for name in ("pipeline", "configuration", "datasets", "models", "evaluation", "tracking", "extending",
                 "performance"):
        assert (site / name / "index.html").is_file(), name
    assert (site / "index.html").is_file()
    assert not (site / "hooks.py").exists()  # the generator is not published as a page asset


def test_readme_is_an_overview_that_names_the_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make test" in readme
    assert readme.count("<!-- leaderboard:start -->") == 1 and readme.count("<!-- leaderboard:end -->") == 1
    assert readme.index("<!-- leaderboard:start -->") < readme.index("<!-- leaderboard:end -->")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):  # relative links point at files
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).is_file(), f"README links to missing {target}"


def test_configuration_page_lists_every_params_key(site):
    text = page(site, "configuration")
    missing = sorted(key for key in schema_keys() if not listed(text, key))
    assert not missing, f"configuration page lacks {missing}"
    for kind in TASK_KINDS:
        assert f'id="kind-{kind}"' in text, kind


def test_models_page_lists_every_type_and_its_hyperparameters(site):
    text = page(site, "models")
    sections = {m[1]: m[2] for m in re.finditer(r'<h2 id="([^"]+)">(.*?)(?=<h2 id=|\Z)', text, re.S)}
    for name, cls in MODEL_TYPES.items():
        assert name in sections, f"models page has no section for type {name}"
        missing = [key for key in cls.hparam_fields if not listed(sections[name], key)]
        assert not missing, f"models page, type {name}, lacks {missing}"


def test_datasets_and_evaluation_pages_list_every_registry_entry(site):
    datasets = page(site, "datasets")
    for name in DATASETS:
        assert f'id="{name}"' in datasets, name
    for kind in TASK_KINDS:
        assert listed(datasets, kind), kind
    evaluation = page(site, "evaluation")
    for metric in list_valid_metrics():
        assert listed(evaluation, metric), metric


def test_readme_leaderboard_is_the_reports_first_section():
    """README's leaderboard is what the report stage wrote (`make readme`), not a hand copy that goes stale."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("genlab_docs_hooks", REPO / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    report = (REPO / "reports" / "leaderboard.md").read_text(encoding="utf-8")
    assert hooks.readme_with_leaderboard(readme, report) == readme, "README's leaderboard is stale: run `make readme`"
    stale = readme.replace("| 1 | 1 [", "| 1 | 9 [", 1)
    assert hooks.readme_with_leaderboard(stale, report) == readme  # a stale block is what the rule catches
    with pytest.raises(ValueError, match="leaderboard:start"):
        hooks.readme_with_leaderboard("# no block\n", report)
