"""One POST for every HTTP channel, and what its outcome means for the delivery.

The mapping, the same for every vendor (``docs/notifications.md``), from the shared policy of
:mod:`infragent.backoff`:

* 2xx → ``delivered``;
* 408, 425, 429 and 5xx but 501/505 → ``retry``; any other 4xx, 501, 505 → ``failed`` (final: the
  same request fails the same way); a 3xx → ``failed`` (redirects are never followed, the same URL
  gives the same answer);
* the receiver's ``Retry-After`` (seconds or an HTTP-date) becomes ``retry_after_s``;
* no answer (timeout, refused or reset connection, DNS failure) → ``retry``, unless the request
  cannot be sent as built (``failed``), via ``transport.transport_failure`` + ``classify_failure``;
* an address the outbound policy refuses → ``failed``, nothing connected, with the policy's reason.

Why ``error`` names only the host: the URLs of Slack, Discord and Teams webhooks carry their
credential in the path or query, so ``HTTP 503 from hooks.slack.com: <body>`` is all that is ever
written, and the body snippet (200 characters, for the person reading the delivery log) is
scrubbed of the URL's path and query and passed through ``redact``. Adapters whose vendor answers
errors inside a 2xx (the Slack Web API) or in a JSON shape worth reading (PagerDuty, Discord) read
``Answer.body`` and refine the result; everything else uses ``Answer.result`` as it is.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from infragent.backoff import TransportFailure, classify_failure, classify_status, parse_retry_after
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.model import AttemptOutcome, DeliveryResult
from infragent.outbound.policy import OutboundRefusedError
from infragent.redact import redact
from infragent.transport import transport_failure

logger = logging.getLogger(__name__)

#: The most of an answer that is read; the rest is not needed to judge it.
MAX_ANSWER_BYTES = 64 * 1024
#: How much of an answer's body an ``error`` quotes.
SNIPPET_CHARS = 200
USER_AGENT = "InfrAgent-notify/1"
_FAILURE_WORDS: dict[TransportFailure, str] = {
    "timeout": "timed out",
    "connect": "could not connect",
    "network": "network error",
    "protocol": "broken answer",
    "proxy": "proxy error",
    "unsendable": "request could not be sent",
}
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST came to: the default verdict, and the HTTP answer when there was one."""

    result: DeliveryResult
    host: str
    status_code: int | None = None
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def refine(
        self,
        outcome: AttemptOutcome,
        error: str | None,
        *,
        retry_after_s: float | None = None,
    ) -> DeliveryResult:
        """The result with another outcome and error (a vendor's error read from the body)."""
        return replace(
            self.result,
            outcome=outcome,
            error=error,
            retry_after_s=retry_after_s if retry_after_s is not None else self.result.retry_after_s,
        )


def host_of(url: str) -> str:
    """The host of ``url`` (what an error may name), or ``"an invalid URL"``."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return host or "an invalid URL"


def post(
    deps: ChannelDeps,
    url: str,
    *,
    payload: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """POST ``payload`` as JSON (or ``content`` as it is) to ``url``; never raises for the outcome."""
    host = host_of(url)
    try:
        body = content if content is not None else encode(payload)
    except TypeError as exc:
        return Answer(
            DeliveryResult("failed", error=f"the message could not be encoded as JSON: {exc}"), host
        )
    sent = {"content-type": "application/json", "user-agent": USER_AGENT, **(headers or {})}
    try:
        with deps.http.stream("POST", url, content=body, headers=sent, timeout=deps.timeout_s) as response:
            answer = _read_capped(response)
            status = response.status_code
            retry_after = response.headers.get("retry-after")
    except OutboundRefusedError as exc:
        logger.warning("notification to %s not sent: %s", host, exc.reason)
        error = f"refused by the outbound policy, nothing sent to {host}: {exc.reason}"
        return Answer(DeliveryResult("failed", error=error), host)
    except httpx.InvalidURL:
        return Answer(DeliveryResult("failed", error="the channel's URL is not a valid URL"), host)
    except UnicodeError:  # a header (a token) or the URL with characters HTTP cannot carry
        error = "the channel's URL or credentials contain characters HTTP cannot send"
        return Answer(DeliveryResult("failed", error=error), host)
    except httpx.DecodingError:  # the answer's content-encoding is garbled: like a broken answer
        return Answer(DeliveryResult("retry", error=f"broken answer from {host}: undecodable body"), host)
    except httpx.TransportError as exc:
        failure = transport_failure(exc)
        outcome: AttemptOutcome = "retry" if classify_failure(failure) == "retry" else "failed"
        detail = scrub(str(exc) or type(exc).__name__, url)
        error = f"{_FAILURE_WORDS[failure]} talking to {host}: {detail}"
        logger.info("notification to %s: %s", host, error)
        return Answer(DeliveryResult(outcome, error=error), host)
    return Answer(judge(status, answer, host, url, retry_after, deps.clock()), host, status, answer)


def encode(payload: Any) -> bytes:
    """``payload`` as JSON; a value JSON has no type for (a date in ``detail``) becomes its string."""
    return orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)


def judge(
    status: int, body: bytes, host: str, url: str, retry_after: str | None, now: float
) -> DeliveryResult:
    """An HTTP answer as a ``DeliveryResult`` (the module's table)."""
    verdict = classify_status(status)
    if verdict == "success":
        return DeliveryResult("delivered", status_code=status)
    wait = parse_retry_after(retry_after, now)
    if 300 <= status < 400:
        error = f"HTTP {status} from {host}: redirects are not followed"
    else:
        quoted = snippet(body, url)
        error = f"HTTP {status} from {host}" + (f": {quoted}" if quoted else "")
    outcome: AttemptOutcome = "retry" if verdict == "retry" else "failed"
    return DeliveryResult(outcome, status_code=status, retry_after_s=wait, error=error)


def snippet(body: bytes, url: str = "") -> str:
    """The first ``SNIPPET_CHARS`` characters of an answer, on one line, scrubbed and redacted."""
    text = _SPACES.sub(" ", body[: SNIPPET_CHARS * 4].decode("utf-8", "replace")).strip()
    return redact(scrub(text, url))[:SNIPPET_CHARS]


def scrub(text: str, url: str) -> str:
    """``text`` without ``url``'s path and query (where the webhooks' credentials are)."""
    if not url:
        return text
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, "[URL]")
    for secret in (url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.path):
        if len(secret) > 1:
            text = text.replace(secret, "[URL]" if secret == url else "…")
    return text


def _read_capped(response: httpx.Response) -> bytes:
    """The answer's body, at most ``MAX_ANSWER_BYTES`` of it (not read further)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER_BYTES:
            break
    return b"".join(chunks)[:MAX_ANSWER_BYTES]
