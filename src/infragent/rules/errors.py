"""What is wrong with a rule file, a rule, a selector or a duration: every problem, with its place.

Why a list of problems rather than the first one: an operator fixing a 200-line rule file wants
every mistake in one run of ``infragent rules check``, as a compiler gives them, not one per run.
Why lines and columns 1-based: that is what editors and ``file:line:col`` links expect.
"""

from __future__ import annotations

from dataclasses import dataclass

from infragent.errors import InfrAgentError


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake: where (1-based line and column in ``source``) and what."""

    line: int
    column: int
    message: str
    source: str = "<rules>"

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class ProblemReport:
    """What every file check answers besides its value: its ``problems`` in order of place, whether
    there are none, and each as ``line:column: message`` (runbooks, steps, schedules, guardrails)."""

    __slots__ = ()
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def lines(self) -> list[str]:
        """Each problem as ``line:column: message``."""
        return [f"{p.line}:{p.column}: {p.message}" for p in self.problems]


class RuleFileError(InfrAgentError):
    """A rule file, rule text or rule test file that does not validate; ``problems`` lists each
    mistake in the order of the text. The HTTP edge answers 422 with them, the CLI exits 2."""

    def __init__(self, problems: list[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.source, p.line, p.column))
        super().__init__("\n".join(str(p) for p in ordered))
        self.problems = ordered


class RuleSyntaxError(RuleFileError):
    """A selector or duration string that does not parse; ``offset`` is the 0-based position of the
    mistake inside the string, so the file parser can point at the right column of the line."""

    def __init__(self, text: str, offset: int, message: str) -> None:
        super().__init__([Problem(1, offset + 1, message, source=repr(text))])
        self.text = text
        self.offset = offset
        self.message = message
