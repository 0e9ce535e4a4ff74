"""Validating the agent config's ``checks:`` and ``actions:`` entries into frozen dataclasses.

Why not pydantic (as the server's settings and HTTP edge use): the agent's budget is
node_exporter's resident memory, and importing pydantic for a handful of check and action
definitions cost an agent with checks about 8 MB of it (plus httpx for the probes: 53.6 MiB
against 20.8 MiB without checks, measured in issue #10). The definitions are flat mappings of
scalars, short lists and one string map; a dozen converters below cover them, and each error keeps
pydantic's wording, so an operator's message is the same as before (``checks[2] (web).url: Field
required``).

How it is used: a config class is a ``@dataclass(frozen=True, slots=True, kw_only=True)`` whose
fields each carry a converter in ``setting(...)``; ``build(cls, raw, where)`` checks unknown and
missing keys, converts each field (a converter raises ``ValueError`` with the message), then
constructs the class, whose ``__post_init__`` holds the cross-field rules ("exactly one of …").
A problem becomes ``ConfigError("where.field", message)``, or ``ConfigError(where, message)``
for a cross-field rule. Converters never coerce surprisingly: a bool is not a number, a number is
not a string.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from infragent.errors import ConfigError

T = TypeVar("T")
Converter = Callable[[Any], Any]

_NO_DEFAULT: Any = dataclasses.MISSING


def setting(convert: Converter, default: Any = _NO_DEFAULT) -> Any:
    """A dataclass field validated by ``convert`` when built from config; required without a default."""
    metadata = {"convert": convert}
    if isinstance(default, list | dict):  # mutable defaults are shared otherwise
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def build(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    """``cls`` from one config mapping, or ``ConfigError`` naming ``where.field`` and what is wrong."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{where}.{key}", "Extra inputs are not permitted")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}.{name}", "Field required")
            continue
        convert: Converter | None = spec.metadata.get("convert")
        try:
            values[name] = convert(raw[name]) if convert is not None else raw[name]
        except ValueError as exc:
            raise ConfigError(f"{where}.{name}", str(exc)) from exc
    try:
        return cls(**values)
    except ValueError as exc:  # a cross-field rule in __post_init__
        raise ConfigError(where, str(exc)) from exc


# -- converters: each returns the value or raises ValueError with pydantic's wording -------------


def text(*, min_length: int = 0, pattern: str | None = None) -> Converter:
    compiled = re.compile(pattern) if pattern is not None else None

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("Input should be a valid string")
        if len(value) < min_length:
            plural = "" if min_length == 1 else "s"
            raise ValueError(f"String should have at least {min_length} character{plural}")
        if compiled is not None and compiled.search(value) is None:
            raise ValueError(f"String should match pattern '{pattern}'")
        return value

    return convert


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def _bounds(value: float, gt: float | None, ge: float | None, le: float | None) -> None:
    if gt is not None and not value > gt:
        raise ValueError(f"Input should be greater than {_shown(gt)}")
    if ge is not None and not value >= ge:
        raise ValueError(f"Input should be greater than or equal to {_shown(ge)}")
    if le is not None and not value <= le:
        raise ValueError(f"Input should be less than or equal to {_shown(le)}")


def number(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Converter:
    """A float; ints and numeric strings (an environment-style ``"5"``) are accepted, bools are not."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("Input should be a valid number")
        try:
            result = float(value)
        except ValueError:
            raise ValueError("Input should be a valid number, unable to parse string as a number") from None
        if not math.isfinite(result):
            raise ValueError("Input should be a finite number")
        _bounds(result, gt, ge, le)
        return result

    return convert


def integer(*, ge: int | None = None, le: int | None = None) -> Converter:
    """An int; a float without a fraction and a string of digits are accepted, bools are not."""

    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("Input should be a valid integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("Input should be a valid integer, got a number with a fractional part")
            value = int(value)
        elif isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                message = "Input should be a valid integer, unable to parse string as an integer"
                raise ValueError(message) from None
        elif not isinstance(value, int):
            raise ValueError("Input should be a valid integer")
        _bounds(value, None, ge, le)
        return int(value)

    return convert


def boolean(value: Any) -> bool:
    """``true``/``false``; the strings ``"true"``/``"false"`` (any case) too, numbers not."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("Input should be a valid boolean")


def choice(*allowed: str) -> Converter:
    """One of fixed strings (a ``Literal``)."""
    quoted = [f"'{a}'" for a in allowed]
    expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"

    def convert(value: Any) -> str:
        if value not in allowed or not isinstance(value, str):
            raise ValueError(f"Input should be {expected}")
        return value

    return convert


def optional(convert: Converter) -> Converter:
    """``None`` stays ``None``; anything else goes through ``convert``."""

    def optional_convert(value: Any) -> Any:
        return None if value is None else convert(value)

    return optional_convert


def strings(*, min_length: int = 0) -> Converter:
    """A list of strings → a tuple (frozen, like the rest of the definition)."""

    def convert(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("Input should be a valid tuple")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"[{index}]: Input should be a valid string")
        if len(value) < min_length:
            plural = "" if min_length == 1 else "s"
            raise ValueError(f"Tuple should have at least {min_length} item{plural} after validation")
        return tuple(value)

    return convert


def string_map(value: Any) -> dict[str, str]:
    """A mapping of strings to strings (a copy: the caller's dict is not kept)."""
    if not isinstance(value, Mapping):
        raise ValueError("Input should be a valid dictionary")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValueError(f"[{key!r}]: Input should be a valid string")
    return dict(value)


def then(first: Converter, second: Converter) -> Converter:
    """``second(first(value))``: a type check followed by a rule of the field's own."""

    def convert(value: Any) -> Any:
        return second(first(value))

    return convert
