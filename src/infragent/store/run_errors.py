"""The errors of people's requests about runbook runs, approvals and guardrails (drawn in ``errors.py``).

Why their own family, in the notification errors' style (``notify/errors.py``): each carries the
HTTP ``status`` it is answered with, and ``server/errors.py`` turns any of them into a JSON body in
one place (``run_refusal``), so the routes stay one store call each and the CLI shows the same text.
``code`` is for programs (the dashboard, the CLI): it says which refusal it is without parsing the
wording (``not_found``, ``ended``, ``decided``, ``expired``, ``invalid``).
"""

from __future__ import annotations

from typing import Literal

from infragent.errors import InfrAgentError

RunErrorCode = Literal["not_found", "ended", "decided", "expired", "invalid"]


class RunError(InfrAgentError):
    """A request about runs, approvals or guardrails refused; ``status`` is its HTTP answer."""

    status = 400
    code: RunErrorCode = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunNotFoundError(RunError):
    """No such run or approval for this tenant (another tenant's reads as missing too): 404."""

    status = 404
    code: RunErrorCode = "not_found"

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")
        self.what = what
        self.ident = ident


class RunConflictError(RunError):
    """The run or approval is not in a state that allows the request: 409 with ``code``
    (``ended``: the run has ended; ``decided``: the approval was answered already;
    ``expired``: the approval ran out unanswered and was rejected, nothing was run)."""

    status = 409

    def __init__(self, code: RunErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class GuardInputError(RunError):
    """Guardrail settings refused: 422 listing every field at fault as ``(field, message)``."""

    status = 422

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))
