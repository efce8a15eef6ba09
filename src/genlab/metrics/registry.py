"""The metric registry: one registered function per metric, as in stylegan2-ada-pytorch's
metrics/metric_main.py (`register_metric`, `is_valid_metric`, `list_valid_metrics`).

A metric is a function of an evaluation context (genlab.metrics.evaluate.EvalContext) returning its
record entry: its value(s) with their protocol, or null values with the reason. The registration
declares everything else the pipeline needs to know about it, so no list elsewhere is kept by hand:

- `applies_to`: the kinds of model it is computed for (KINDS); a model of several kinds (a paired
  cycle model is "translation", "paired" and "cycle") gets every metric that applies to one of them;
- `numbers`: number name -> field of the entry; these go to the DVC metrics file (metrics/<m>.json),
  to MLflow, and are the leaderboard's CSV columns;
- `per_n`: the numbers are logged to MLflow a second time named after the entry's n_fake
  (fid_n2000), so runs scored with different N are never compared under one name;
- `columns`: how the leaderboard shows it (label, and how a row's numbers are rendered);
- `space`: the features it is computed in: "inception" (the cross-check at eval.num_fake samples, for
  the first eval.inception_seeds training seeds only), "classifier" (the dataset classifier's, every
  sample of every seed: cheap) or "pixels"/"labels";
- `protocol`: one line on how it is computed (the estimator, k, N), shown in the docs and the report.

The record key of a metric is its name. Metrics are computed, and their numbers listed, in
registration order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

NOISE, TRANSLATION, PAIRED, CYCLE, ADAPTATION = "noise", "translation", "paired", "cycle", "adaptation"
KINDS = {
    NOISE: "noise-to-image models (samples from latent noise)",
    TRANSLATION: "every image-to-image translation model (outputs for test inputs)",
    PAIRED: "translation on a paired task (each output has its target)",
    CYCLE: "cycle models, whose samples file holds reconstructions G_BA(G_AB(input))",
    ADAPTATION: "domain adaptation, whose samples file holds task predictions for the test targets",
}
GENERATIVE = (NOISE, TRANSLATION)  # FID and its kin: every model that outputs images


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fixed(number: str, digits: int) -> Callable[[Any], str]:
    """A renderer of one number with `digits` decimals ("—" when null)."""
    def render(row: Any) -> str:
        value = getattr(row, number)
        return "—" if _missing(value) else f"{value:.{digits}f}"
    return render


def integer(number: str) -> Callable[[Any], str]:
    def render(row: Any) -> str:
        value = getattr(row, number)
        return "—" if _missing(value) else str(int(value))
    return render


@dataclass(frozen=True)
class Column:
    """A leaderboard column: shown in a section when `number` is non-null in one of its rows."""

    number: str
    label: str
    render: Callable[[Any], str]
    align: str = "---:"  # its Markdown alignment row cell


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[Any], dict]
    applies_to: frozenset[str]
    numbers: tuple[tuple[str, str], ...]
    per_n: bool
    columns: tuple[Column, ...]
    doc: str
    space: str = "pixels"
    protocol: str = ""

    def applies(self, kinds: Iterable[str]) -> bool:
        return not self.applies_to.isdisjoint(kinds)

    def numbers_of(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        return {number: entry.get(field) for number, field in self.numbers}


_METRICS: dict[str, Metric] = {}


SPACES = ("inception", "classifier", "pixels", "labels")


def register_metric(name: str, *, applies_to: Iterable[str], numbers: Mapping[str, str], per_n: bool = False,
                    columns: Iterable[Column] | None = None, space: str = "pixels", protocol: str = ""):
    """Decorator: register `fn(ctx) -> record entry` as metric `name` (its record key). `columns`
    defaults to one column per number, labelled with the number's name, 3 decimals."""
    applies_to = frozenset(applies_to)
    unknown = applies_to - set(KINDS)
    if unknown or not applies_to:
        raise ValueError(f"metric {name}: applies_to {sorted(unknown) or '(empty)'}; allowed kinds: {', '.join(KINDS)}")
    if space not in SPACES:
        raise ValueError(f"metric {name}: space {space!r}; allowed: {', '.join(SPACES)}")

    def decorator(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        if name in _METRICS:
            raise ValueError(f"metric {name} is registered twice ({_METRICS[name].compute.__qualname__}, "
                             f"{fn.__qualname__})")
        cols = tuple(columns) if columns is not None else tuple(Column(n, n, fixed(n, 3)) for n in numbers)
        _METRICS[name] = Metric(name, fn, applies_to, tuple(numbers.items()), per_n, cols,
                                (fn.__doc__ or "").strip().split("\n")[0], space, protocol)
        return fn
    return decorator


def _load() -> dict[str, Metric]:
    return _METRICS  # filled by genlab.metrics.builtin, which the package imports first


def metrics() -> list[Metric]:
    """Every registered metric, in registration order."""
    return list(_load().values())


def get_metric(name: str) -> Metric:
    registry = _load()
    if name not in registry:
        raise ValueError(check_metrics([name]))
    return registry[name]


def is_valid_metric(name: str) -> bool:
    return name in _load()


def list_valid_metrics() -> list[str]:
    return list(_load())


def check_metrics(names: Iterable[str] | None) -> str | None:
    """None when every name is a registered metric (or `names` is None: all that apply), else the error
    message for `eval.metrics`, naming the unknown ones and the valid ones."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        return (f"eval.metrics: got {names!r}; expected a list of metric names or null (every metric that "
                f"applies to the model): {', '.join(list_valid_metrics())}")
    unknown = [n for n in names if not is_valid_metric(n)]
    if unknown:
        return (f"eval.metrics: unknown metric(s) {', '.join(map(repr, unknown))}; valid metrics: "
                f"{', '.join(list_valid_metrics())}")
    return None


def require_valid_metrics(names: Iterable[str] | None) -> None:
    """`eval.metrics` checked against the registry at a stage's edge: a ParamsError (exit code 2, one
    line) for an unknown name."""
    from genlab.schema import ParamsError

    error = check_metrics(names)
    if error:
        raise ParamsError(error)


def rank_key_problem(number: str, names: Iterable[str] | None, sections: Mapping[str, frozenset[str]]) -> str | None:
    """Why `number` cannot rank the leaderboard (None when it can): it must be a number of a registered
    metric that eval.metrics keeps and that applies to the kinds of every section (name -> kinds)."""
    owner = next((m for m in metrics() if number in dict(m.numbers)), None)
    if owner is None:
        return f"allowed values (the registered metrics' numbers): {', '.join(leaderboard_numbers())}"
    if names is not None and owner.name not in names:
        return f"it is metric {owner.name}'s number and eval.metrics leaves {owner.name} out; add it there"
    missing = [section for section, kinds in sections.items() if not owner.applies(kinds)]
    if missing:
        allowed = [n for m in metrics() if all(m.applies(k) for k in sections.values())
                   and (names is None or m.name in names) for n, _ in m.numbers]
        return (f"metric {owner.name} is not computed for section(s) {', '.join(missing)}; allowed values "
                f"for these sections: {', '.join(allowed)}")
    return None


def applicable(kinds: Iterable[str], names: Iterable[str] | None = None) -> list[Metric]:
    """The metrics computed for a model of these kinds: those of `names` (all when None) that apply."""
    kinds = set(kinds)
    error = check_metrics(names)
    if error:
        raise ValueError(error)
    wanted = None if names is None else set(names)
    return [m for m in metrics() if m.applies(kinds) and (wanted is None or m.name in wanted)]


def metric_numbers(record: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a record (DVC metrics file): every number of every metric the record holds, null
    where the protocol file gives the reason."""
    out: dict[str, Any] = {}
    for metric in metrics():
        if metric.name in record:
            out.update(metric.numbers_of(record[metric.name]))
    return out


def mlflow_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers logged to MLflow: the metrics file's, and those of `per_n` metrics also named after
    their N (fid_n2000); nulls left out (the protocol file says why)."""
    out = metric_numbers(record)
    for metric in metrics():
        entry = record.get(metric.name)
        if metric.per_n and entry is not None and entry.get("n_fake") is not None:
            out.update({f"{number}_n{entry['n_fake']}": value for number, value in metric.numbers_of(entry).items()})
    return {key: value for key, value in out.items() if value is not None}


def leaderboard_numbers() -> list[str]:
    """Every metric number, in registration order: the leaderboard table's metric columns."""
    return [number for metric in metrics() for number, _ in metric.numbers]


def leaderboard_columns() -> list[Column]:
    return [column for metric in metrics() for column in metric.columns]


def summary(record: Mapping[str, Any]) -> str:
    """One line of a record's non-null numbers and its N, for a stage's log."""
    numbers = "  ".join(f"{k} {v:.4g}" for k, v in metric_numbers(record).items() if v is not None)
    fid_entry = record.get("fid") or {}
    return f"{numbers} (N={fid_entry.get('n_fake')} vs {fid_entry.get('n_real')} real, {fid_entry.get('extractor')})"
