"""Run references, as users write them to `genlab audit` and `genlab compare`: a run id, `<model>@<seed>`,
a model name or a `dvc exp` name, resolved against the MLflow store (no pipeline stage uses this)."""
from __future__ import annotations

from typing import Mapping

from genlab.errors import InputError
from genlab.tracking.mlflow_run import RUN_ID, RUN_TAGS


class UnknownRun(InputError):
    """A run reference that names no run in the tracking store."""


def find_run(client, ref: str, *, seed_run: bool = False):
    """The run `ref` names, in any experiment of the store:

    - an MLflow run id (32 hex digits): that run; with `seed_run`, a model's parent run (tag
      genlab.role=parent: the aggregates over training seeds) gives its first seed's run instead;
    - `<model>@<seed>`: the latest run of that training seed of the model (tags genlab.model, genlab.seed);
    - a model name: the first training seed's run (the parent's genlab.seeds tag gives the order) under
      the model's latest parent run; where there is no parent (a store made before training seeds) or
      it has no seed run yet, the model's latest run that is not a parent;
    - a `dvc exp` name: the same among the runs of that experiment (tag dvc.exp_name).

    Raises UnknownRun, saying what a reference may be, when none matches."""
    import math

    from mlflow.exceptions import MlflowException

    def quoted(value: str) -> str:
        quote = '"' if "'" in value else "'"
        return f"{quote}{value}{quote}"

    def runs(tags: Mapping[str, str], page: int = 100):
        """The runs with these tags, newest first (paged lazily)."""
        filter_string = " and ".join(f"tags.`{key}` = {quoted(value)}" for key, value in tags.items())
        token = None
        while True:
            found = client.search_runs(experiments, filter_string=filter_string, max_results=page,
                                       order_by=["attributes.start_time DESC"], page_token=token)
            yield from found
            token = found.token
            if not token:
                return

    def is_parent(run) -> bool:
        return run.data.tags.get("genlab.role") == "parent"

    def first_child(parent):
        """The parent's run of its first listed seed (the newest, should there be several)."""
        order = [s.strip() for s in parent.data.tags.get("genlab.seeds", "").split(",") if s.strip()]

        def rank(run):
            seed = run.data.tags.get("genlab.seed", "")
            return (order.index(seed) if seed in order else len(order), int(seed) if seed.isdigit() else math.inf)

        children = list(runs({"mlflow.parentRunId": parent.info.run_id}))
        return min(children, key=rank) if children else None  # min keeps the first (newest) of equal ranks

    def latest(tags: Mapping[str, str]):
        parent = next(runs({**tags, "genlab.role": "parent"}, page=1), None)
        child = first_child(parent) if parent is not None else None
        return child or next((r for r in runs(tags) if not is_parent(r)), None)

    if RUN_ID.fullmatch(ref):
        try:
            run = client.get_run(ref)
        except MlflowException:
            raise UnknownRun(f"no MLflow run with id {ref} in {client.tracking_uri}") from None
        if not (seed_run and is_parent(run)):
            return run
        experiments = [run.info.experiment_id]
        child = first_child(run)
        if child is None:
            model = run.data.tags.get("genlab.model", "?")
            raise UnknownRun(f"run {ref} is the parent run of model {model} (its numbers over training seeds) and "
                             f"has no seed run in {client.tracking_uri}: its train stage has not finished a seed; "
                             f"give a seed's run id or `{model}@<seed>`")
        return child
    experiments = [e.experiment_id for e in client.search_experiments()]
    model, at, seed = ref.rpartition("@")
    if at and model and seed.isdigit() and experiments:
        run = next(runs({"genlab.model": model, "genlab.seed": seed}, page=1), None)
        if run is not None:
            return run
    for tag in RUN_TAGS if experiments else ():
        run = latest({tag: ref})
        if run is not None:
            return run
    if at and model and seed.isdigit():
        seeds = sorted({int(s) for r in (client.search_runs(experiments, f"tags.`genlab.model` = {quoted(model)}",
                                                             max_results=1000) if experiments else ())
                        if (s := r.data.tags.get("genlab.seed", "")).isdigit()})
        known = (f"model {model}'s runs have training seeds {', '.join(map(str, seeds))}" if seeds else
                 f"no run has genlab.model={model!r}")
        raise UnknownRun(f"no MLflow run of model {model!r} with training seed {seed} in {client.tracking_uri}: "
                         f"{known} (a model's seeds are params.yaml's `seeds`, or the model's own `seeds`)")
    raise UnknownRun(f"no MLflow run named {ref!r} in {client.tracking_uri}: give a run id (32 hex digits), "
                     f"a model name (a key of params.yaml's models that has been trained: its first training seed's "
                     f"run), `<model>@<seed>` (that training seed's run) or a `dvc exp` name")
