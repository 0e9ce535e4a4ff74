"""A runbook run (``step_run.Run``) as JSON and back, for the ``runbook_runs.state`` column.

Why a closed registry and not pickle or a generic importer: the state is read back by every
responder and the API; a row must never be able to name a class to build. Each value is written as
its fields plus ``"__t"``, its class's name, and read back only if that name is one of
``_TYPES``, with tuples restored where the dataclass declares them (JSON has only lists).

Pure: no I/O. ``decode_run(encode_run(run)) == run`` for every run the core can produce (tested
over the step cases).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from infragent.errors import StoreError
from infragent.responder import step_run, steps
from infragent.rules.model import Matcher, Selector, Threshold

_CLASSES: Final[tuple[type, ...]] = (
    # the run
    step_run.Run,
    step_run.Cursor,
    step_run.StepResult,
    step_run.Command,
    steps.IncidentFacts,
    # the instructions a cursor may hold
    step_run.SendCommand,
    step_run.WouldSend,
    step_run.StartWait,
    step_run.EvaluateCheck,
    step_run.AwaitApproval,
    step_run.AwaitRecovery,
    step_run.SendNotification,
    step_run.QueryLlm,
    step_run.EscalateIncident,
    step_run.Complete,
    step_run.Fail,
    step_run.Cancelled,
    step_run.Idle,
    # a check step's body, carried by EvaluateCheck
    steps.Check,
    Threshold,
    Selector,
    Matcher,
)
_TYPES: Final[Mapping[str, type]] = {cls.__name__: cls for cls in _CLASSES}
#: fields that are tuples in the dataclasses (JSON gives lists back)
_TUPLES: Final[Mapping[str, frozenset[str]]] = {
    "Run": frozenset({"results", "recovered"}),
    "Selector": frozenset({"matchers"}),
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in _TYPES:
            raise TypeError(f"{name} is not a value a run may hold")
        out: dict[str, Any] = {"__t": name}
        for f in dataclasses.fields(value):
            out[f.name] = _encode(getattr(value, f.name))
        return out
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, str):
        return str(value)  # a StrEnum (RunStatus) is stored as its value
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    name = value.get("__t")
    if name is None:
        return {k: _decode(v) for k, v in value.items()}
    cls = _TYPES.get(name)
    if cls is None:
        raise StoreError(f"a stored run names an unknown value type {name!r}")
    tuples = _TUPLES.get(name, frozenset())
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in value:
            continue
        got = _decode(value[f.name])
        if f.name in tuples and isinstance(got, list):
            got = tuple(got)
        kwargs[f.name] = got
    if cls is step_run.Run:
        kwargs["status"] = step_run.RunStatus(kwargs["status"])
    return cls(**kwargs)


def encode_run(run: step_run.Run) -> dict[str, Any]:
    """The run as a JSON-ready mapping."""
    encoded = _encode(run)
    assert isinstance(encoded, dict)
    return encoded


def decode_run(state: Mapping[str, Any]) -> step_run.Run:
    """The run stored as ``state``; ``StoreError`` when it is not one."""
    try:
        run = _decode(dict(state))
    except (TypeError, ValueError, KeyError) as exc:
        raise StoreError(f"a stored run cannot be read: {exc}") from exc
    if not isinstance(run, step_run.Run):
        raise StoreError("a stored run is not a run")
    return run


def encode_value(value: Any) -> Any:
    """Any value a run holds (a command, an instruction) as JSON-ready data, e.g. for ``run_steps``."""
    return _encode(value)


def decode_value(data: Any) -> Any:
    return _decode(data)
