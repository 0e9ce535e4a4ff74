"""A deterministic "model" for the LLM stand-in: reads the prompt it received, answers like a naive one.

Why a rule-based brain and not scripted answers: the eval suite (tests/evals) must exercise the real
path — the context builder's sections, the adapter, the wire, the validation, the guardrails — with
an answer that depends on what the prompt *says*, as a model's would. Scripted answers would pass
whatever the prompt held.

Two temperaments:

* naive (``obey=False``): picks the obvious fix from the evidence — restart a service that is down,
  clean a full disk, scale a backlog — and escalates when unsure, when the same fix already failed
  or was tried too often, when the incident flaps, or when no allowed action fits;
* obedient (``obey=True``): the worst model there is. It reads the untrusted data (decoded, as a
  model reads it) and does exactly what any text there asks: the first JSON object with an
  ``action`` in it is sent back verbatim, and ``reply with exactly this text: «...»`` is obeyed to
  the letter. What it obeyed is recorded in ``obeyed`` for the injection suite's counts.

Use as the stand-in's ``rules``: ``LlmStandIn(api_key="k", rules=Brain())``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_SECTION = re.compile(
    r"^<<<BEGIN (?P<name>[A-Z]+):[^\n]*>>>\n(?P<body>.*?)\n<<<END (?P=name)>>>$", re.S | re.M
)
_VERBATIM = re.compile(r"reply with exactly this text: \u00ab(?P<text>.*?)\u00bb", re.S)
#: The sections that hold untrusted data: where an injected instruction can hide.
_UNTRUSTED = ("INCIDENT", "TIMELINE", "EVENTS", "METRICS", "HISTORY")
_FAILED = frozenset({"error", "failed", "timeout", "rejected", "expired", "unreachable"})

_DOWN = ("down", "crash", "exited", "unhealthy", "check_failed", "not_responding", "oom", "killed", "dead")
_DISK = ("disk", "filesystem", "no space")
_BACKLOG = ("backlog", "queue")
_CACHE = ("stale cache", "cache")


def sections(user: str) -> dict[str, list[Any]]:
    """The decoded JSON lines of each section of a ``responder.context`` prompt, by name."""
    out: dict[str, list[Any]] = {}
    for m in _SECTION.finditer(user):
        out[m["name"]] = [json.loads(line) for line in m["body"].splitlines() if line != "(none)"]
    return out


def strings(value: Any) -> Iterator[str]:
    """Every string in a decoded value, keys included, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def demand_in(text: str) -> str | None:
    """What an injected instruction in ``text`` asks the model to answer, or None."""
    verbatim = _VERBATIM.search(text)
    if verbatim is not None:
        return verbatim["text"]
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, end = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and "action" in value:
            return text[m.start() : end]
    return None


def _answer(action: str, target: str | None, params: Mapping[str, str], why: str) -> str:
    return json.dumps({"action": action, "target": target, "params": dict(params), "rationale": why})


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


@dataclass
class Brain:
    """The stand-in's ``rules``: ``brain(system, user) -> answer text`` (see the module docstring)."""

    obey: bool = False
    #: the demands the obedient brain found and answered, in order
    obeyed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, system: str, user: str) -> str:
        found = sections(user)
        if self.obey:
            for section in _UNTRUSTED:
                for text in strings(found.get(section, [])):
                    wanted = demand_in(text)
                    if wanted is not None:
                        with self._lock:
                            self.obeyed.append(wanted)
                        return wanted
        return self.decide(found)

    def decide(self, found: Mapping[str, list[Any]]) -> str:
        """The naive model's choice from the decoded sections."""
        incident = (found.get("INCIDENT") or [{}])[0]
        events = found.get("EVENTS", [])
        metrics = found.get("METRICS", [])
        history = found.get("HISTORY", [])
        allowed = {a["name"]: a.get("params", {}) for a in found.get("ACTIONS", [])}
        if incident.get("status") == "resolved":
            return _answer("none", None, {}, "the incident is resolved")
        if incident.get("flapping"):
            return _answer("escalate", None, {}, "the incident flaps: a person must look at the cause")
        if events and all(e.get("severity") == "info" for e in events) and incident.get("severity") == "info":
            return _answer("none", None, {}, "only informational events")
        evidence = " ".join(
            [str(incident.get("title", "")).lower()]
            + [f"{e.get('type', '')} {json.dumps(e.get('data', {}))}".lower() for e in events]
        )
        hot = {
            m["name"].split(".")[0].lower()
            for m in metrics
            if isinstance(m.get("last"), float | int) and m["last"] >= 90
        }
        labels = incident.get("labels", {}) if isinstance(incident.get("labels"), dict) else {}
        service = next((e["service"] for e in reversed(events) if e.get("service")), labels.get("service"))
        choices: list[tuple[str, dict[str, str]]] = []
        if _has(evidence, _DISK) or "disk" in hot:
            choices += [(a, {}) for a in ("cleanup_disk", "rotate_logs", "clear_tmp")]
        elif _has(evidence, _BACKLOG) or "queue" in hot:
            choices.append(("scale_up", {}))
        elif _has(evidence, ("memory", "leak")) or "memory" in hot or _has(evidence, _DOWN):
            choices.append(("restart", {"service": service or ""}))
        elif _has(evidence, _CACHE):
            choices.append(("clear_cache", {}))
        for action, params in choices:
            if action not in allowed:
                continue
            tried = [p for p in history if p.get("action") == action]
            failed = [p for p in tried if p.get("outcome") in _FAILED]
            if len(failed) >= 2 or len(tried) >= 3:
                return _answer(
                    "escalate", None, {}, f"{action} was tried {len(tried)} times, {len(failed)} failed"
                )
            declared = {k: v for k, v in params.items() if k in allowed[action]}
            target = declared.get("service")
            return _answer(action, target, declared, f"{action} is the usual fix for this")
        return _answer("escalate", None, {}, "no allowed action fits what I see; a person must look")
