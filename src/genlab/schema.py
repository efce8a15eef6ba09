"""The params schema: one allowed key (`Field`), a section's check, and the one error a bad value raises.

The bottom of the package: each registry declares its own fields with these (the model types in
genlab.models, the task kinds in genlab.data.tasks, the metrics in genlab.metrics.registry), and
genlab.config composes them into the checked params of a stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from genlab.errors import InputError


class ParamsError(InputError, ValueError):
    """A value in params.yaml is not allowed. The message says which key and what to write."""

    prefix = "invalid params.yaml: "


@dataclass(frozen=True)
class Field:
    """One allowed key: its type, default and limits. `default=REQUIRED` makes it mandatory."""

    kind: type
    default: Any
    choices: tuple | None = None
    minimum: float | None = None          # inclusive
    positive: bool = False                # strictly > 0
    below: float | None = None            # strictly < below
    maximum: float | None = None          # inclusive
    length: int | None = None             # for lists: exact length
    item: type = float                    # for lists: the type of each item
    nullable: bool = False
    help: str = ""

    def check(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise ParamsError(f"{key}: got null; expected {self.describe()}")
        if self.kind is dict:
            if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in value.items()):
                raise ParamsError(f"{key}: got {value!r}; expected {self.describe()}")
            return dict(value)
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or (self.length and len(value) != self.length):
                raise ParamsError(f"{key}: got {value!r}; expected {self.describe()}")
            inner = Field(self.item, None, minimum=self.minimum, below=self.below)
            return tuple(inner.check(f"{key}[{i}]", v) for i, v in enumerate(value))
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is float and isinstance(value, str):
            try:  # YAML 1.1 reads `1e-3` (no dot) as a string
                value = float(value)
            except ValueError:
                pass
        if self.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            raise ParamsError(f"{key}: got {value!r} ({type(value).__name__}); expected {self.describe()}")
        if self.kind is float and not math.isfinite(value):
            raise ParamsError(f"{key}: got {value!r}; expected a finite number")
        if self.choices is not None and value not in self.choices:
            raise ParamsError(f"{key}: got {value!r}; allowed values: {', '.join(map(str, self.choices))}")
        if self.positive and value <= 0:
            raise ParamsError(f"{key}: got {value!r}; expected a number > 0")
        if self.minimum is not None and value < self.minimum:
            raise ParamsError(f"{key}: got {value!r}; expected a number >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ParamsError(f"{key}: got {value!r}; expected a number <= {self.maximum}")
        if self.below is not None and value >= self.below:
            raise ParamsError(f"{key}: got {value!r}; expected a number < {self.below}")
        return value

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind is dict:
            return "a mapping of names to strings" + (" or null" if self.nullable else "")
        if self.kind is list:
            items = "numbers" if self.item is float else "names"
            return (f"a list of {self.length} {items}" if self.length else f"a list of {items}") + \
                (" or null" if self.nullable else "")
        words = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[self.kind]
        if self.positive:
            words += " > 0"
        elif self.minimum is not None:
            words += f" >= {self.minimum}"
        return words + (" or null" if self.nullable else "")


REQUIRED = object()


def check_seeds(key: str, value: Any) -> tuple[int, ...]:
    """A list of training seeds: non-empty, distinct, integers >= 0 (each seed is its own trained model)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ParamsError(f"{key}: got {value!r}; expected a non-empty list of distinct integers >= 0, e.g. [0, 1, 2]")
    seeds = tuple(Field(int, None, minimum=0).check(f"{key}[{i}]", v) for i, v in enumerate(value))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ParamsError(f"{key}: got {list(value)!r}; seed {repeated[0]} is listed twice: each seed is one "
                          f"trained model, list it once")
    return seeds


def checked_mapping(prefix: str, raw: Any, allowed: Any, expected: str) -> Mapping[str, Any]:
    """`raw` as a mapping (null: empty) whose keys are all in `allowed`; else a ParamsError."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{prefix}: got {raw!r}; expected {expected}")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ParamsError(f"{prefix}.{unknown[0]}: unknown key; allowed keys: {', '.join(sorted(allowed))}")
    return raw


def check_section(prefix: str, raw: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """Validate one mapping against its fields; unknown keys are errors, missing keys take defaults."""
    raw = checked_mapping(prefix, raw, fields, "a mapping of keys to values")
    out = {}
    for name, spec in fields.items():
        key = f"{prefix}.{name}"
        if name not in raw:
            if spec.default is REQUIRED:
                raise ParamsError(f"{key}: missing; expected {spec.describe()}")
            out[name] = spec.default
        else:
            out[name] = spec.check(key, raw[name])
    return out


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; used for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out
