"""Bodies of the rules API (``/api/v1/rules``), pydantic at the edge only.

Why ``RuleSpec`` describes the rule body but does not parse it: the route parses the raw text with
``rules.files.parse_rule_text``, which knows every kind's fields and answers each mistake with its
line and column in the text as sent (pydantic would give a JSON path, and nothing for YAML). The
model exists so the OpenAPI document shows the body's fields; docs/rules.md is the full reference.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infragent.rules.model import Cmp, Combine, Direction, Severity, WindowFn

Origin = Literal["default", "file", "api"]


class RuleSpec(BaseModel):
    """One alert rule, as in a rule file's ``rules:`` list (docs/rules.md). Durations are strings
    like ``30s``, ``5m``, ``1h30m`` or numbers of seconds. Which fields apply depends on ``kind``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: str = Field(description="The rule's name, unique in the tenant.", examples=["HighCpu"])
    kind: Literal["threshold", "absence", "reset", "event", "forecast", "anomaly"]
    group: str | None = Field(default=None, description="The rule group (default: `default`).")
    metric: str | None = Field(
        default=None,
        description='Selector: `name{label op "value", …}` with ops `= != =~ !~` '
        "(threshold, reset, forecast, anomaly; optional for absence).",
        examples=['system.cpu.utilization{cpu.mode!="idle"}'],
    )
    function: WindowFn | None = Field(default=None, description="threshold: the function over the window.")
    window: str | float | None = Field(default=None, description="threshold, forecast, anomaly.")
    op: Cmp | None = None
    value: float | None = None
    recover: float | None = Field(default=None, description="threshold: hysteresis; resolve only past this.")
    silent: str | float | None = Field(default=None, description="absence: silent this long.")
    horizon: str | float | None = Field(default=None, description="forecast: how far ahead.")
    baseline: str | float | None = Field(default=None, description="anomaly: the baseline window.")
    z: float | None = Field(default=None, description="anomaly: the robust z-score to pass.")
    warmup: str | float | None = Field(default=None, description="anomaly: baseline needed first.")
    direction: Direction | None = None
    match: dict[str, Any] | None = Field(
        default=None,
        description="event: `{type, service, min_severity, data: {k: v}}` of events that open it.",
    )
    resolve: dict[str, Any] | None = Field(default=None, description="event: events that resolve it.")
    by: list[str] | None = Field(default=None, description="Labels that make one alert instance.")
    combine: Combine | None = Field(default=None, description="How a group's series fold into one value.")
    for_: str | float | None = Field(default=None, alias="for", description="How long it must hold first.")
    keep_firing_for: str | float | None = None
    severity: Severity | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    enabled: bool | None = None


class RuleOut(BaseModel):
    name: str
    group: str
    kind: str
    origin: Origin = Field(description="default: the shipped pack; file: a rule file; api: made here.")
    enabled: bool
    spec: dict[str, Any] = Field(description="The rule in the rule-file format (docs/rules.md).")
    created_at: float
    updated_at: float


class EnabledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="Switch the rule on or off; any rule, the pack's and files' too.")


class ProblemOut(BaseModel):
    line: int = Field(description="1-based line in the body as sent.")
    column: int = Field(description="1-based column in the body as sent.")
    message: str


class ProblemsOut(BaseModel):
    """A refused body: ``detail`` sums it up, ``problems`` names each mistake's place."""

    detail: str
    problems: list[ProblemOut]


class ValidationOut(BaseModel):
    valid: bool = Field(description="Whether POST would accept this body now.")
    detail: str = Field(description="What is wrong, in one line; empty when valid.")
    problems: list[ProblemOut]
    rule: dict[str, Any] | None = Field(default=None, description="The rule as it would be stored.")
    instances: int | None = Field(
        default=None, description="Alert instances the rule would have over the tenant's current series."
    )
    max_instances: int


#: The request body of POST /rules, /rules/validate and PUT /rules/{name} in the OpenAPI document.
def rule_request_body() -> dict[str, Any]:
    schema = RuleSpec.model_json_schema(by_alias=True)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/yaml": {
                    "schema": {"type": "string", "description": "The same rule as YAML."},
                    "example": "alert: HighCpu\nkind: threshold\n"
                    "metric: 'system.cpu.utilization{cpu.mode!=\"idle\"}'\nfunction: avg\nwindow: 1m\n"
                    "by: [host]\ncombine: sum\nop: '>'\nvalue: 0.9\nfor: 2m\n",
                },
            },
        }
    }
