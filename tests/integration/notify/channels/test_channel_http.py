"""The shared POST of every HTTP channel (``notify/channels/http.py``) against a real stand-in:
2xx delivered, 429/5xx retried with ``Retry-After``, other 4xx and 3xx final, no answer retried,
a refused address final; an error names the host only, never the URL's secret path or query."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.http import SNIPPET_CHARS, post
from support.servers import closed_port
from support.standins.base import Received, Reply, StandIn

SECRET_PATH = "/services/T000/B000/s3cr3t-t0ken"


class Echo(StandIn):
    """Answers 200 ``{"ok": true}``; failures come from ``fail_next``."""

    def answer(self, request: Received) -> Reply:
        return Reply.json(200, {"ok": True})


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as standin:
        yield standin


def test_a_2xx_is_delivered_and_the_json_body_and_headers_are_sent(echo: Echo, deps: ChannelDeps) -> None:
    answer = post(deps, echo.url + SECRET_PATH, payload={"text": "hi"}, headers={"x-extra": "1"})
    assert (answer.result.outcome, answer.result.status_code, answer.result.error) == ("delivered", 200, None)
    assert answer.json() == {"ok": True} and answer.host == "127.0.0.1"
    (got,) = echo.received
    assert got.json == {"text": "hi"} and got.path == SECRET_PATH
    assert got.headers["content-type"] == "application/json" and got.headers["x-extra"] == "1"


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome", "wait"),
    [
        (429, "7", "retry", 7.0),
        (503, "1.5", "retry", 1.5),
        (500, None, "retry", None),
        (408, None, "retry", None),
        (400, None, "failed", None),
        (404, None, "failed", None),
        (501, None, "failed", None),
    ],
)
def test_statuses_map_onto_the_shared_retry_policy(
    echo: Echo, deps: ChannelDeps, status: int, retry_after: str | None, outcome: str, wait: float | None
) -> None:
    echo.fail_next(1, status, retry_after=retry_after, body="no_service")
    result = post(deps, echo.url + SECRET_PATH, payload={}).result
    assert (result.outcome, result.status_code, result.retry_after_s) == (outcome, status, wait)
    assert result.error == f"HTTP {status} from 127.0.0.1: no_service"


def test_retry_after_as_an_http_date_is_read_against_the_injected_clock(
    echo: Echo, deps: ChannelDeps
) -> None:
    echo.fail_next(1, 503, retry_after="Sun, 15 Jun 2025 16:27:10 GMT")  # samples.NOW + 30 s
    assert post(deps, echo.url, payload={}).result.retry_after_s == pytest.approx(30.0)


def test_the_error_quotes_the_body_cut_scrubbed_and_redacted(echo: Echo, deps: ChannelDeps) -> None:
    echo.fail_next(1, 400, body=f"bad   request\nfor {SECRET_PATH} password=hunter2 " + "x" * 500)
    error = post(deps, echo.url + SECRET_PATH, payload={}).result.error or ""
    assert error.startswith("HTTP 400 from 127.0.0.1: bad request for … password=[REDACTED]")
    assert "s3cr3t" not in error and "hunter2" not in error
    assert len(error) <= len("HTTP 400 from 127.0.0.1: ") + SNIPPET_CHARS


def test_a_redirect_is_final_and_not_followed(echo: Echo, deps: ChannelDeps) -> None:
    echo.fail_next(1, 302, body="")
    result = post(deps, echo.url, payload={}).result
    assert (result.outcome, result.error) == ("failed", "HTTP 302 from 127.0.0.1: redirects are not followed")
    assert len(echo.received) == 1


def test_no_answer_is_retried_and_names_the_host_only(echo: Echo, deps: ChannelDeps) -> None:
    echo.down()
    result = post(deps, echo.url + SECRET_PATH, payload={}).result
    assert (result.outcome, result.status_code) == ("retry", None)
    assert (result.error or "").startswith("could not connect talking to 127.0.0.1")
    assert "s3cr3t" not in (result.error or "")
    echo.up()  # the same URL works again
    assert post(deps, echo.url + SECRET_PATH, payload={}).result.outcome == "delivered"


def test_a_closed_port_is_retried(deps: ChannelDeps) -> None:
    result = post(deps, f"http://127.0.0.1:{closed_port()}/x", payload={}).result
    assert result.outcome == "retry"


def test_loopback_refused_by_the_default_policy_is_final_and_nothing_is_connected(
    echo: Echo, strict_deps: ChannelDeps
) -> None:
    result = post(strict_deps, echo.url + SECRET_PATH + "?sig=qu3ry-s3cret", payload={}).result
    assert result.outcome == "failed" and result.status_code is None
    error = result.error or ""
    assert "refused by the outbound policy" in error and "loopback" in error
    assert "s3cr3t" not in error and "/services" not in error and echo.received == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http://"])
def test_an_unusable_url_is_final(deps: ChannelDeps, url: str) -> None:
    assert post(deps, url, payload={}).result.outcome == "failed"


def test_a_token_http_cannot_carry_is_final_and_not_shown(echo: Echo, deps: ChannelDeps) -> None:
    result = post(deps, echo.url, payload={}, headers={"authorization": "Bearer xoxb-tökén"}).result
    assert result.outcome == "failed" and "tökén" not in (result.error or "") and echo.received == []


def test_values_json_has_no_type_for_are_sent_as_strings(echo: Echo, deps: ChannelDeps) -> None:
    import datetime

    when = datetime.date(2025, 6, 15)
    assert post(deps, echo.url, payload={"detail": {"on": when, 1: "x"}}).result.outcome == "delivered"
    assert echo.received[0].json == {"detail": {"on": "2025-06-15", "1": "x"}}
