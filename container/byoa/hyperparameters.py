"""Hyperparameters declared once per algorithm: parsing, validation, errors, docs and listings.

In the spirit of scikit-learn's ``_parameter_constraints``: each ``Param`` names
its constraint, default and (if tuning may search it) its ``Tune`` range; ``parse``
turns SageMaker's all-string ``hyperparameters.json`` into typed values or one clear
``ConfigError``; ``specification`` and ``tuning_range`` give CreateAlgorithm's and the
SDK's view of the same declaration.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import ConfigError, shown

REQUIRED = object()
PLATFORM_PREFIXES = ("_", "sagemaker_")
INT_LIMIT = 2**31 - 1  # an unbounded integer's bound in a listing (SageMaker's ranges are strings, but int-sized)
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")


class Constraint:
    def parse(self, value: Any) -> Any:
        """Return the typed value or raise ValueError."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def specification(self) -> tuple[str, dict | None]:
        """CreateAlgorithm's ``Type`` and ``Range`` for values of this constraint."""
        return "FreeText", None


def _number(value: Any, kind) -> Any:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if kind is int else float(value)
    if kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError
    return value


@dataclass(frozen=True)
class Integer(Constraint):
    low: int | None = None
    high: int | None = None

    def parse(self, value):
        v = _number(value, int)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise ValueError
        return v

    def describe(self):
        return _range("integer", self.low, self.high)

    def specification(self):
        low = -INT_LIMIT if self.low is None else self.low
        high = INT_LIMIT if self.high is None else self.high
        return "Integer", {"IntegerParameterRangeSpecification": {"MinValue": str(low), "MaxValue": str(high)}}


@dataclass(frozen=True)
class Real(Constraint):
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def parse(self, value):
        v = _number(value, float)
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            raise ValueError
        if self.high is not None and v > self.high:
            raise ValueError
        return v

    def describe(self):
        return _range("number", self.low, self.high, self.low_open)

    def specification(self):
        low = -sys.float_info.max if self.low is None else math.nextafter(self.low, math.inf) if self.low_open else self.low
        high = sys.float_info.max if self.high is None else self.high
        return "Continuous", {"ContinuousParameterRangeSpecification": {"MinValue": repr(float(low)), "MaxValue": repr(float(high))}}


def _range(kind, low, high, low_open=False):
    fmt = (lambda v: str(v)) if kind == "integer" else (lambda v: f"{v:g}")  # noqa: E731
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{fmt(low)}, {fmt(high)}]"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {fmt(low)}"
    if high is not None:
        return f"{kind} <= {fmt(high)}"
    return kind


@dataclass(frozen=True)
class Options(Constraint):
    """One of ``choices``; values in ``unsupported`` are the built-in's but not this image's."""

    choices: tuple
    unsupported: tuple = ()

    def parse(self, value):
        text = str(value).strip()
        for choice in self.choices:
            if text.lower() == str(choice).lower():
                return choice
        raise ValueError

    def describe(self):
        return "one of " + ", ".join(map(str, self.choices))

    def specification(self):
        return "Categorical", {"CategoricalParameterRangeSpecification": {"Values": [str(c) for c in self.choices]}}


@dataclass(frozen=True)
class Boolean(Constraint):
    def parse(self, value):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError

    def describe(self):
        return "true or false"

    def specification(self):
        return "Categorical", {"CategoricalParameterRangeSpecification": {"Values": ["true", "false"]}}


@dataclass(frozen=True)
class AnyOf(Constraint):
    options: tuple

    def parse(self, value):
        for option in self.options:
            try:
                return option.parse(value)
            except (ValueError, TypeError):
                continue
        raise ValueError

    def describe(self):
        return " or ".join(o.describe() for o in self.options)


@dataclass(frozen=True)
class ListOf(Constraint):
    item: Constraint

    def parse(self, value):
        if isinstance(value, str):
            value = [v for v in value.strip("[]").replace('"', "").replace("'", "").split(",") if v.strip()]
        if not isinstance(value, list) or not value:
            raise ValueError
        return [self.item.parse(v) for v in value]

    def describe(self):
        return f"a non-empty list, each {self.item.describe()}"


@dataclass(frozen=True)
class Mapping(Constraint):
    """An object whose listed keys, where present, satisfy their constraints (a model manifest's nested values)."""

    fields: dict

    def parse(self, value):
        if not isinstance(value, dict):
            raise ValueError
        return {**value, **{k: c.parse(value[k]) for k, c in self.fields.items() if k in value}}

    def describe(self):
        return "an object with " + ", ".join(f"{k}: {c.describe()}" for k, c in self.fields.items())


@dataclass(frozen=True)
class Text(Constraint):
    def parse(self, value):
        return str(value)

    def describe(self):
        return "text"


@dataclass(frozen=True)
class Tune:
    """Where hyperparameter tuning may search: ``low``..``high`` with one of SageMaker's scalings, or ``values``."""

    low: float | None = None
    high: float | None = None
    scaling: str = "Auto"
    values: tuple = ()


@dataclass(frozen=True)
class Param:
    name: str
    constraint: Constraint
    default: Any = REQUIRED
    help: str = ""
    ignored: bool = False  # documented by the built-in algorithm, accepted, has no effect here
    tune: Tune | None = None  # tunable, within this range

    def __post_init__(self):
        if self.tune is not None:  # a declaration error shows at import, not in somebody's tuning job
            _check_tune(self)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def tuned_constraint(self) -> Constraint:
        """The constraint a tunable value satisfies: of ``AnyOf(auto, number)``, the number."""
        if not isinstance(self.constraint, AnyOf):
            return self.constraint
        wanted = (Options, Boolean) if self.tune.values else (Integer, Real)
        return next(o for o in self.constraint.options if isinstance(o, wanted))


def _check_tune(param: Param) -> None:
    tune = param.tune
    if tune.scaling not in SCALINGS or bool(tune.values) == (tune.low is not None):
        raise ValueError(f"{param.name}: a Tune has values or low..high, and a scaling in {SCALINGS}")
    try:
        constraint = param.tuned_constraint
    except StopIteration:
        raise ValueError(f"{param.name}: {param.constraint.describe()} has nothing to tune that way") from None
    for value in tune.values or (tune.low, tune.high):
        try:
            constraint.parse(value)
        except (ValueError, TypeError):
            raise ValueError(f"{param.name}: tuning value {value!r} is not {constraint.describe()}") from None
    if tune.low is not None and (tune.low >= tune.high or (tune.scaling.endswith("Logarithmic") and tune.low <= 0)):
        raise ValueError(f"{param.name}: tuning range {tune.low}..{tune.high} is empty or not positive for {tune.scaling}")


def decode(raw: Any) -> Any:
    """Values arrive as plain strings or JSON-encoded ones ('"auto"', '["msd"]'): try JSON first."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, TypeError):
        return raw


@dataclass
class Parsed:
    values: dict
    ignored: dict  # name -> value accepted with no effect
    platform: dict  # names the SDK or tuning added


def parse(params: Iterable[Param], raw: dict, owner: str) -> Parsed:
    declared = {p.name: p for p in params}
    values, ignored, platform = {}, {}, {}
    for name, raw_value in raw.items():
        if name.startswith(PLATFORM_PREFIXES):
            platform[name] = raw_value
            continue
        param = declared.get(name)
        if param is None:
            raise ConfigError(f"unknown hyperparameter '{shown(name)}' for {owner}; known: {', '.join(sorted(declared))}")
        value = decode(raw_value)
        options = param.constraint if isinstance(param.constraint, Options) else None
        if options and str(value).strip().lower() in {str(u).lower() for u in options.unsupported}:
            raise ConfigError(
                f"{name}={shown(value)} is not supported by this image; supported: {', '.join(map(str, options.choices))}"
            )
        try:
            parsed = param.constraint.parse(value)
        except (ValueError, TypeError):
            raise ConfigError(
                f"invalid value for hyperparameter {name}: {raw_value!r}; allowed: {param.constraint.describe()}"
            ) from None
        if param.ignored:
            ignored[name] = parsed
        values[name] = parsed
    missing = [p.name for p in declared.values() if p.required and p.name not in values]
    if missing:
        raise ConfigError(f"missing required hyperparameter{'s' if len(missing) > 1 else ''} for {owner}: {', '.join(missing)}")
    for p in declared.values():
        values.setdefault(p.name, p.default)
    return Parsed(values, ignored, platform)


def as_text(value: Any) -> str:
    """A value as SageMaker passes it: every hyperparameter value is a string (JSON for lists and booleans)."""
    return value if isinstance(value, str) else json.dumps(value)


def specification(param: Param) -> dict:
    """CreateAlgorithm's ``HyperParameterSpecification``. A tunable ``auto``-or-number is listed as the number, without
    a default: leaving it out still means ``auto``."""
    listed = param.tuned_constraint if param.tune else param.constraint
    kind, value_range = listed.specification()
    spec = {"Name": param.name, "Type": kind, "IsTunable": param.tune is not None, "IsRequired": param.required}
    if value_range:
        spec["Range"] = value_range
    description = (param.help.rstrip(".") + ". " if param.help else "") + f"Allowed: {param.constraint.describe()}."
    if param.default is None:
        description += " Not set by default."
    elif not param.required:
        try:
            listed.parse(decode(as_text(param.default)))
            spec["DefaultValue"] = as_text(param.default)
        except (ValueError, TypeError):
            description += f" Not set: {as_text(param.default)}."
    spec["Description"] = description
    return spec


def tuning_range(param: Param) -> dict:
    """The range as the SDK's ``IntegerParameter`` / ``ContinuousParameter`` / ``CategoricalParameter`` take it."""
    tune = param.tune
    if tune.values:
        return {"type": "Categorical", "values": [as_text(v) for v in tune.values]}
    kind = "Integer" if isinstance(param.tuned_constraint, Integer) else "Continuous"
    return {"type": kind, "min_value": tune.low, "max_value": tune.high, "scaling_type": tune.scaling}


def _tuning_text(param: Param) -> str:
    if param.tune is None:
        return ""
    r = tuning_range(param)
    if r["type"] == "Categorical":
        return ", ".join(r["values"])
    scale = {"Logarithmic": " (log)", "ReverseLogarithmic": " (reverse log)"}.get(r["scaling_type"], "")
    return f"{r['min_value']:g} to {r['max_value']:g}{scale}"


def markdown_table(params: Iterable[Param]) -> str:
    """The README table for one algorithm, generated from its declaration."""
    lines = ["| name | allowed | default | tuning range | notes |", "| --- | --- | --- | --- | --- |"]
    for p in params:
        default = "**required**" if p.required else "not set" if p.default is None else f"`{as_text(p.default)}`"
        notes = ("accepted, no effect in this image. " if p.ignored else "") + p.help
        lines.append(f"| `{p.name}` | {p.constraint.describe()} | {default} | {_tuning_text(p)} | {notes.strip()} |")
    return "\n".join(lines)
