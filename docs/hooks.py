"""MkDocs hook: the reference tables of the docs, generated from genlab's registries at build time.

A page asks for a table with a marker line, `<!-- genlab:NAME -->`; `on_page_markdown` replaces it with
the Markdown that GENERATORS[NAME] returns. An unknown marker, or a params key the package knows and
this file does not describe, stops the build. Everything here only reads the registries:

- configuration: genlab.config's `Field` sections, dataset_fields(), the task kinds' fields
  (genlab.data.tasks.TASK_KINDS) and the presets (genlab.presets.PRESETS);
- datasets: genlab.data.sources.DATASETS;
- models: genlab.models.MODEL_TYPES (each type's docstring, `defaults` and `hparam_fields`);
- metrics: genlab.metrics.registry.

Importing genlab.models imports torch: the model types are torch modules.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mkdocs.exceptions import PluginError

REPO = Path(__file__).resolve().parents[1]
# The checkout being documented comes first, whatever copy of genlab the environment has installed.
sys.path.insert(0, str(REPO / "src"))

MARKER = re.compile(r"^<!-- genlab:([a-z-]+) -->$", re.MULTILINE)

#: The top-level keys of params.yaml: what each is, and where its keys are listed on the page.
TOP_LEVEL = {
    "seed": "the protocol's seed: the dataset classifier's training, KID's subsets, the reference subsets",
    "seeds": "the training seeds: every model entry is trained once per seed, each its own model, samples, "
             "metrics and MLflow run",
    "data": "[`data`](#data): how training data is read",
    "datasets": "[`datasets`](#datasets): the datasets the pipeline downloads and packs",
    "tasks": "[`tasks`](#tasks): image-to-image tasks derived from packed datasets",
    "models": "[`models`](#models): the models to train, one entry each",
    "train": "[`train`](#train): the training loop",
    "sample": "[`sample`](#sample): the samples the evaluate stage draws",
    "eval": "[`eval`](#eval): the evaluate stage's Inception side and metric choice",
    "evaluator": "[`evaluator`](#evaluator): the dataset classifier",
    "report": "[`report`](#report): the leaderboard's ranking",
}

#: The sections made of one `Field` mapping each, in page order, with a sentence on what they set.
SECTIONS = (
    ("data", "DATA_FIELDS", "How the training split is read. Every model reads the same way."),
    ("train", "TRAIN_FIELDS", "The training loop, for every model and seed."),
    ("sample", "SAMPLE_FIELDS", "The samples the evaluate stage draws: what each training seed's samples file holds."),
    ("eval", "EVAL_FIELDS", "The evaluate stage. The Inception-space metrics (FID, KID, precision/recall, "
                            "density/coverage) score the first `num_fake` samples of the first `inception_seeds` "
                            "seeds; the classifier-space metrics score every sample of every seed."),
    ("evaluator", "EVALUATOR_FIELDS", "The dataset classifier trained by `evaluator@<dataset>`, behind the "
                                      "classifier-space metrics and the best-checkpoint score."),
    ("report", "REPORT_FIELDS", "How the leaderboard ranks models over training seeds."),
)


# --------------------------------------------------------------------------- rendering
def cell(text: Any) -> str:
    """Text for one Markdown table cell: pipes escaped, one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: Any) -> str:
    return f"`{text}`"


def yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def kind_name(field) -> str:
    words = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "mapping"}
    if field.kind is list:
        return f"list of {words[field.item]}s"
    return words[field.kind]


def allowed(field) -> str:
    """The values a Field accepts, in the words of its checks (genlab.config.Field.check)."""
    if field.choices is not None:
        text = "one of " + ", ".join(code(yaml_value(c)) for c in field.choices)
    elif field.kind is dict:
        text = "file role → `md5:<hex>` or `sha256:<hex>`"
    elif field.kind is bool:
        text = "`true`, `false`"
    else:
        limits = []
        if field.length:
            limits.append(f"exactly {field.length} items")
        prefix = "each item " if field.kind is list else ""
        if field.positive:
            limits.append(f"{prefix}> 0")
        if field.minimum is not None:
            limits.append(f"{prefix}>= {yaml_value(field.minimum)}")
        if field.maximum is not None:
            limits.append(f"{prefix}<= {yaml_value(field.maximum)}")
        if field.below is not None:
            limits.append(f"{prefix}< {yaml_value(field.below)}")
        text = ", ".join(limits) or "any"
    return text + (", or `null`" if field.nullable else "")


def default_of(field) -> str:
    from genlab.config import REQUIRED

    return "required" if field.default is REQUIRED else code(yaml_value(field.default))


def field_rows(prefix: str, fields: Mapping[str, Any], defaults: Mapping[str, str] | None = None):
    defaults = defaults or {}
    for key, field in fields.items():
        full = f"{prefix}{key}"
        yield (code(full), kind_name(field), defaults.get(key) or default_of(field),
               ALLOWED_ELSEWHERE.get(full) or allowed(field), field.help or "—")


FIELD_HEADER = ("key", "type", "default", "allowed", "what it sets")

#: Values genlab.config checks outside the key's `Field` (against a registry or another section).
ALLOWED_ELSEWHERE = {
    "data.dataset": "a registered dataset listed under `datasets:`",
    "models.<name>.type": "a registered type (see [Models](models.md))",
    "models.<name>.dataset": "a key of `datasets:`; for image-to-image types a key of `tasks:`; or `null`",
    "models.<name>.seeds": "non-empty, distinct, each >= 0; or `null`",
    "eval.metrics": "names of [registered metrics](evaluation.md#the-metrics), or `null`",
    "report.rank_by": "a number of a registered metric computed for every section",
}


# --------------------------------------------------------------------------- configuration
def top_level_keys() -> list[str]:
    """The top-level keys parse_params accepts, as it lists them when refusing an unknown one."""
    from genlab.config import ParamsError, parse_params

    try:
        parse_params({"~not-a-key": None})
    except ParamsError as err:
        listed = str(err).split("allowed keys:", 1)
        if len(listed) == 2:
            return [k.strip() for k in listed[1].split(",")]
    raise PluginError("genlab.config.parse_params no longer lists its top-level keys; update docs/hooks.py")


def configuration() -> str:
    from genlab import config
    from genlab.data.sources import DATASETS
    from genlab.data.tasks import TASK_KINDS

    keys = top_level_keys()
    if set(keys) != set(TOP_LEVEL):
        raise PluginError(f"docs/hooks.py TOP_LEVEL lists {', '.join(sorted(TOP_LEVEL))}; genlab.config accepts "
                          f"{', '.join(sorted(keys))}: update TOP_LEVEL")
    keys = list(TOP_LEVEL)
    section_attrs = {attr for _, attr, _ in SECTIONS} | {"COMMON_MODEL_FIELDS"}
    unmapped = sorted(a for a in dir(config) if a.endswith("_FIELDS") and a not in section_attrs)
    if unmapped:
        raise PluginError(f"genlab.config sections missing from docs/hooks.py SECTIONS: {', '.join(unmapped)}")

    seed = ("`seed`", "integer", "`0`", ">= 0", TOP_LEVEL["seed"])
    seeds = ("`seeds`", "list of integers", "`[<seed>]`", "non-empty, distinct, each >= 0", TOP_LEVEL["seeds"])
    out = ["## Top level", "",
           table(FIELD_HEADER, [seed, seeds]), "",
           "The sections, each described below:", "",
           table(("key", "what it holds"), [(code(k), TOP_LEVEL[k]) for k in keys if k not in ("seed", "seeds")]),
           ""]

    for name, attr, text in SECTIONS[:1]:
        out += [f"## {name}", "", text, "", table(FIELD_HEADER, field_rows(f"{name}.", getattr(config, attr))), ""]

    # datasets: the same keys for every dataset, with the registry's values as defaults
    per_dataset = {n: config.dataset_fields(n) for n in DATASETS}
    out += ["## datasets", "",
            "One entry per dataset to prepare, keyed by its registry name (see [Datasets](datasets.md)), each with "
            "a `download:` and a `pack:` section. Both may be empty (`{}`): a key left out takes the registry's "
            "value. `download@<dataset>` depends on `datasets.<dataset>.download` and `pack@<dataset>` on "
            "`datasets.<dataset>.pack`, so a new crop re-packs without downloading again.", ""]
    for section in config.DATASET_SECTIONS:
        merged: dict[str, Any] = {}
        for fields in per_dataset.values():
            for key, field in fields[section].items():
                merged.setdefault(key, field)
        varying = {}
        for key in merged:
            values = {n: f[section][key].default for n, f in per_dataset.items() if key in f[section]}
            if len(set(map(yaml_value, values.values()))) > 1 or len(values) < len(per_dataset):
                varying[key] = "per dataset (below)"
        out += [table(FIELD_HEADER, field_rows(f"datasets.<name>.{section}.", merged, varying)), ""]
    pack_keys = [k for k in per_dataset[next(iter(per_dataset))]["pack"]]
    extra = sorted({k for f in per_dataset.values() for k in f["pack"]} - set(pack_keys))
    out += ["The registry's `pack` defaults per dataset (`—`: the key does not apply; `test_fraction` exists only "
            "for datasets without an official test split):", "",
            table(["dataset"] + [code(k) for k in pack_keys + extra],
                  [[code(n)] + [code(yaml_value(f["pack"][k].default)) if k in f["pack"] else "—"
                                for k in pack_keys + extra] for n, f in per_dataset.items()]), ""]

    # tasks: two keys every entry has, then the kind's own
    kinds = ", ".join(code(k) for k in TASK_KINDS)
    out += ["## tasks", "",
            "One entry per image-to-image task (see [Datasets: image-to-image tasks](datasets.md#image-to-image-"
            "tasks)). A task's name may not be a dataset's. `dvc.yaml`'s task stages iterate over this key, so it "
            "must stay in `params.yaml`, as `tasks: {}` when there are none.", "",
            table(FIELD_HEADER, [("`tasks.<name>.dataset`", "string", "required", "a key of `datasets:`",
                                  "the packed dataset the task is derived from"),
                                 ("`tasks.<name>.kind`", "string", "required", f"one of {kinds}",
                                  "how inputs and targets are derived")]), ""]
    for kind in TASK_KINDS.values():
        out += [f"### kind: {kind.name}", "", kind.description or "", ""]
        if kind.fields:
            out += [table(FIELD_HEADER, field_rows("tasks.<name>.", kind.fields)), ""]
        else:
            out += ["No settings of its own.", ""]

    # models: the keys every entry has; each type's own are on the models page
    type_default = {"type": "the entry's name"}
    out += ["## models", "",
            "One entry per model to train; the entry's name is yours (letters, digits, `_`, `-`). These keys apply "
            "to every type. A type may change the defaults of `epochs`, `batch_size` and `lr` (WGAN's `lr` is "
            "5e-5), and adds hyperparameters of its own: both are listed per type on [Models](models.md).", "",
            table(FIELD_HEADER, field_rows("models.<name>.", config.COMMON_MODEL_FIELDS, type_default)), ""]

    for name, attr, text in SECTIONS[1:]:
        out += [f"## {name}", "", text, "", table(FIELD_HEADER, field_rows(f"{name}.", getattr(config, attr))), ""]
    return "\n".join(out)


def presets() -> str:
    from genlab.presets import PRESETS

    return table(("name", "file", "what it sets"), [(code(n), code(p.file), p.summary) for n, p in PRESETS.items()])


# --------------------------------------------------------------------------- datasets
def checksum_words(remote) -> str:
    if not remote.published:
        return "none published: sha256 of the first download recorded"
    what = "decompressed content" if remote.scope == "content" else "file as published"
    return f"{remote.algorithm} of the {what} (`{remote.checksum[:8]}…`)"


def datasets() -> str:
    from genlab.data.sources import DATASETS

    def labels(d):
        return f"{d.num_classes} classes" if d.labelled else "none"

    def packed(d):
        crop = f", centre crop {d.crop}" if d.crop else ""
        return f"{d.channels}×{d.side}×{d.side}{crop}"

    out = [table(("name", "layout", "packed by default", "labels", "test split"),
                 [(f"[`{n}`](#{n})", d.layout, packed(d), labels(d),
                   f"{d.test_fraction:g} of identities, by name hash" if d.test_fraction else "the publisher's")
                  for n, d in DATASETS.items()]), ""]
    for name, d in DATASETS.items():
        out += [f"### {name}", "", f"{d.licence}", "", f"Homepage: <{d.homepage}>", ""]
        rows = []
        for role, remote in d.files.items():
            where = [f"`{u}`" for u in remote.urls]
            if remote.gdrive_id:
                where.append(f"Google Drive id `{remote.gdrive_id}`")
            rows.append((code(role), code(remote.name), checksum_words(remote), ", ".join(where) or "—"))
        out += [table(("role", "file", "verified by", "own URLs (after the mirrors)"), rows), ""]
        if d.local_dirs:
            out += ["Local directories tried first: " + ", ".join(code(p) for p in d.local_dirs) + ".", ""]
        if d.mirrors:
            out += ["Mirrors: " + ", ".join(code(m) for m in d.mirrors) + ".", ""]
        if d.class_names:
            out += ["Classes: " + ", ".join(d.class_names) + ".", ""]
        for note in d.notes:
            out += [note, ""]
    return "\n".join(out)


def task_kinds() -> str:
    from genlab.data.tasks import TASK_KINDS

    def settings(kind):
        return ", ".join(f"`{k}: {yaml_value(f.default)}`" for k, f in kind.fields.items()) or "—"

    return table(("kind", "inputs → targets", "settings (defaults)", "needs labels"),
                 [(code(k), v.description, settings(v), "yes" if v.needs_labels else "no")
                  for k, v in TASK_KINDS.items()])


# --------------------------------------------------------------------------- models
def summary(cls) -> str:
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def kind_of(cls) -> str:
    if cls.trains_on == "task":
        return "image-to-image"
    return "noise-to-image, conditional (needs labels)" if cls.conditional else "noise-to-image"


def models_table() -> str:
    from genlab.models import MODEL_TYPES

    return table(("type", "kind", "summary"),
                 [(f"[`{n}`](#{n})", kind_of(c), summary(c)) for n, c in MODEL_TYPES.items()])


def models() -> str:
    from genlab.config import COMMON_MODEL_FIELDS
    from genlab.models import MODEL_TYPES

    out = []
    for name, cls in MODEL_TYPES.items():
        common = {k: cls.defaults.get(k, COMMON_MODEL_FIELDS[k].default) for k in ("epochs", "batch_size", "lr")}
        out += [f"## {name}", "", summary(cls), "",
                f"Kind: {kind_of(cls)}. Class `{cls.__module__}.{cls.__qualname__}`. Common keys' defaults: "
                + ", ".join(f"`{k}: {yaml_value(v)}`" for k, v in common.items()) + ".", ""]
        if cls.hparam_fields:
            out += [table(FIELD_HEADER, field_rows("", cls.hparam_fields)), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- metrics
def metrics() -> str:
    from genlab.metrics import registry

    return table(("metric", "applies to", "features", "numbers (metrics file, MLflow)", "what it is", "protocol"),
                 [(code(m.name), ", ".join(sorted(m.applies_to)), m.space,
                   ", ".join(code(n) for n, _ in m.numbers) + (" (also per N)" if m.per_n else ""),
                   m.doc, m.protocol or "—") for m in registry.metrics()])


def metric_kinds() -> str:
    from genlab.metrics import registry

    return table(("kind", "models"), [(code(k), v) for k, v in registry.KINDS.items()])


GENERATORS: dict[str, Callable[[], str]] = {
    "configuration": configuration,
    "presets": presets,
    "datasets": datasets,
    "task-kinds": task_kinds,
    "models-table": models_table,
    "models": models,
    "metrics": metrics,
    "metric-kinds": metric_kinds,
}


# --------------------------------------------------------------------------- README
LEADERBOARD = re.compile(r"(<!-- leaderboard:start -->\n).*?(<!-- leaderboard:end -->)", re.S)


def report_first_section(report: str) -> str:
    """The first dataset section of reports/leaderboard.md (its table and notes, without the heading)."""
    sections = re.split(r"^## .*$", report, flags=re.M)
    if len(sections) < 2:
        raise ValueError("reports/leaderboard.md has no '## <dataset>' section: run `dvc repro report`")
    return sections[1].strip() + "\n"


def readme_with_leaderboard(readme: str, report: str) -> str:
    """README with its leaderboard block replaced by the report's first section."""
    if not LEADERBOARD.search(readme):
        raise ValueError("README.md lacks the <!-- leaderboard:start --> ... <!-- leaderboard:end --> block")
    return LEADERBOARD.sub(lambda m: m.group(1) + report_first_section(report) + m.group(2), readme, count=1)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: unknown marker <!-- genlab:{name} -->; "
                              f"known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


if __name__ == "__main__":  # `make readme`: README's leaderboard block from the committed report
    readme_path, report_path = REPO / "README.md", REPO / "reports" / "leaderboard.md"
    updated = readme_with_leaderboard(readme_path.read_text(encoding="utf-8"),
                                      report_path.read_text(encoding="utf-8"))
    tmp = readme_path.with_suffix(".md.tmp")
    tmp.write_text(updated, encoding="utf-8")
    tmp.replace(readme_path)
