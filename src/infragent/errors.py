"""The InfrAgent exception tree: every exception class in ``src/`` is drawn here.

Why one root: callers at loop boundaries (responder step, ingest batch, agent tick) catch
``InfrAgentError`` for expected failures and let anything else reach ``logger.exception``.
Classes live beside the code that raises them (the module in brackets) and carry their data as
attributes; ``tests/unit/test_errors.py`` fails when a class is missing from this tree or does not
descend from the root.

    InfrAgentError
    ├── ConfigError               a setting is unknown or has a bad value (``key``)
    ├── SignatureError            a signed message failed verification (``code``, ``reason``)
    ├── StoreError                the database refused or lost an operation
    │   ├── LeaseLostError        another responder took the work item over  [responder.ports]
    │   ├── TenantLostError       another evaluator holds the tenant's alert state  [alerting.ports]
    │   ├── IncidentDecidedError  the item's incident was decided by another claim  [responder.ports]
    │   ├── LedgerError           the agent's command ledger cannot be read or written  [agent.ledger]
    │   ├── ChunkFormatError      a stored chunk cannot be decoded (also ValueError)  [store.metrics.chunks]
    │   └── _SliceChangedError    compaction's slice moved under it; retried  [store.metrics.compaction]
    ├── WireError                 a request body is refused: HTTP ``status`` and ``reason``  [wire.metrics]
    │   ├── PayloadTooLargeError  over the (decompressed) size cap: 413  [wire.metrics]
    │   ├── UnsupportedEncodingError  an encoding or version we do not speak: 415  [wire.metrics]
    │   └── OtlpError             an OTLP body that cannot be decoded: 400  [server.ingest.otlp.model]
    ├── SeriesCapError            the tenant's series cap refuses new series: 429  [server.ingest.admission]
    ├── QueryError                a query cannot be answered as asked: 422  [query.errors]
    │   ├── LabelSyntaxError      a label selector does not parse  [query.errors]
    │   └── TooManySeriesError    the query matches more series than one answer holds  [query.errors]
    ├── RuleFileError             a rule file, rule or rule test is invalid: ``problems``  [rules.errors]
    │   └── RuleSyntaxError       a selector or duration string does not parse (``offset``)  [rules.errors]
    ├── RuleConflictError         a rule name is taken, or the rule is managed: 409  [store.rules]
    ├── ScopeError                a valid key lacks the operation's scope: 403  [auth.scopes]
    ├── EmailTakenError           the e-mail already owns a tenant: 409  [auth.registration]
    ├── LoginRequiredError        a page asked without a live session: redirect to sign-in  [server.web.deps]
    ├── PageForbiddenError        the role lacks the page's operation: the 403 page  [server.web.deps]
    ├── UserExistsError           a user with this e-mail exists: 409  [store.users]
    ├── KeyInactiveError          a revoked or expired key cannot be rotated: 409  [store.tenants]
    ├── AccountError              a change to users refused: its HTTP ``status``  [auth.accounts]
    │   ├── SetupDoneError        first-run setup once a user exists: 404  [auth.accounts]
    │   ├── LastAdminError        would leave the tenant without an enabled admin: 409  [auth.accounts]
    │   ├── SharedUserError       disabling a user of other tenants too: 409  [auth.accounts]
    │   └── NotMemberError        no such user in this tenant: 404  [auth.accounts]
    ├── NotifyError               a notification request refused: its HTTP ``status``  [notify.errors]
    │   ├── NotifyConfigError     a channel, route tree, silence or template is invalid: 422 with
    │   │                         ``problems`` (field path, message)  [notify.errors]
    │   ├── NotifyNotFoundError   no such channel, route, silence or delivery here: 404  [notify.errors]
    │   └── NotifyConflictError   a channel name is taken, a channel is in use, a delivery is not
    │                             dead: 409  [notify.errors]
    ├── IncidentError             an incident cannot be changed as asked  [incidents.core]
    │   ├── StatusChangeError     a move the status machine forbids: 409 (``from_status``, ``to_status``)
    │   ├── IncidentNotFoundError no such incident for this tenant: 404  [incidents.core]
    │   └── CursorError           a paging cursor this server did not give out: 422  [store.incident_reads]
    ├── ScheduleError             a schedule request refused: its HTTP ``status`` (404, 409, 422) and
    │                             the ``field`` at fault  [store.schedule_specs]
    ├── ApprovalError             an answer to an approval refused: ``code`` role 403, decided or
    │                             expired 409  [responder.approval]
    ├── RunError                  a request about runs, approvals or guardrails refused: its HTTP
    │   │                         ``status`` and ``code``  [store.run_errors]
    │   ├── RunNotFoundError      no such run or approval here: 404  [store.run_errors]
    │   ├── RunConflictError      the run has ended, the approval was answered or expired: 409
    │   │                         (``code``)  [store.run_errors]
    │   └── GuardInputError       guardrail settings refused: 422 with ``problems``  [store.run_errors]
    ├── LlmError                  an LLM provider failed (transport, status, shape, timeout)
    ├── ProtoError                a remote-write protobuf cannot be encoded or read  [remote_write.proto]
    ├── ReportError               the SDK could not report to the server  [sdk.client]
    ├── OutboundRefusedError      a tenant URL reaches only refused addresses  [outbound.policy]
    ├── RejectedError             the agent's allowlist refuses a command  [agent.allowlist]
    ├── HttpError                 the agent's HTTP client failed  [agent.http]
    │   └── _StaleConnectionError a kept-alive connection the server had closed; retried  [agent.http]
    └── SpoolError                the agent's disk spool failed  [agent.spool.model]
        ├── SpoolFullError        the spool is at its size cap (``directory``, ``operation``)
        ├── SpoolLockedError      another agent process holds the spool
        └── RecordTooLargeError   one record is larger than a segment (also ValueError)
"""

from __future__ import annotations

from typing import Literal

#: Why a signed message was refused; travels as ``code`` in a receiver's 401 body
#: (``wire.commands``), so a sender acts on the code, never on the wording of the message.
SignatureCode = Literal["missing_headers", "bad_timestamp", "stale", "bad_signature", "replay", "bad_secret"]


class InfrAgentError(Exception):
    """Root of every error InfrAgent raises on purpose."""


class ConfigError(InfrAgentError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration error: {key}: {message}")
        self.key = key
        self.message = message


class SignatureError(InfrAgentError):
    """A signed message was refused: ``code`` says why, for programs; ``reason`` for people.

    Why both: the receiver's 401 carries ``code`` and the dispatcher acts on it (a ``replay`` of a
    re-sent command means "already delivered"), so the text can be reworded without changing what
    any program does.
    """

    def __init__(self, code: SignatureCode, reason: str) -> None:
        super().__init__(reason)
        self.code: SignatureCode = code
        self.reason = reason


class StoreError(InfrAgentError):
    pass


class LlmError(InfrAgentError):
    pass
