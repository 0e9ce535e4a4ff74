"""Pull mode: long-poll the server for signed commands, hand each to the processor, report its result.

Why its own loop and client: a 25 s long poll must never hold up a metric batch or an event, so
the poller owns one ``HttpClient`` and one thread. It follows the agent's answer table
(:mod:`infragent.agent.delivery`): a refused key or URL pauses polling (60 s growing to 10 min) and
shows on ``/health/ready``; other failures are retried with the normal backoff. A command that ran
has its result reported until the server takes it: the outcome of an action must not be lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import quote

import msgspec

from infragent.agent.delivery import Refusals, classify, pause_backoff, pause_delay
from infragent.agent.http import HttpClient, HttpError, json_headers
from infragent.agent.shipper import CommandHandler, reason_of
from infragent.backoff import Backoff, parse_retry_after

logger = logging.getLogger(__name__)


class _PulledCommand(msgspec.Struct):
    headers: dict[str, str]
    body: str


class _Pulled(msgspec.Struct):
    commands: list[_PulledCommand] = []


class CommandPoller:
    """Pull mode: long-polls for signed commands, hands each to ``handler``, reports its result."""

    def __init__(
        self,
        client: HttpClient,
        api_key: str,
        node_id: str,
        handler: CommandHandler,
        *,
        stop: threading.Event,
        wait_s: int = 25,
        backoff: Backoff | None = None,
        refusals: Refusals | None = None,
        pause: Backoff | None = None,
    ) -> None:
        self._client = client
        self._refusals = refusals or Refusals()
        self._pause = pause or pause_backoff()
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._json_headers = json_headers(api_key)
        self._path = f"/api/v1/agents/{quote(node_id, safe='')}/commands?wait={wait_s}"
        self._handler = handler
        self._stop = stop
        self._wait_s = wait_s
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=60.0)
        self.handled = 0

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.poll_once()
            except Exception:  # loop boundary
                logger.exception("commands: unexpected error in the pull loop")
                delay = self._backoff.next_delay()
            if delay:
                self._stop.wait(delay)

    def poll_once(self) -> float:
        """One long-poll; returns how long to wait before the next (0 after a normal answer)."""
        try:
            response = self._client.request(
                "GET", self._path, headers=self._headers, timeout_s=self._wait_s + 15
            )
        except HttpError as exc:
            if self._stop.is_set():
                return 0.0
            delay = self._backoff.next_delay()
            logger.warning("commands: server unreachable (%s); polling again in %.1f s", exc, delay)
            return delay
        retry_after = parse_retry_after(response.header("retry-after"), time.time())
        if classify(response.status) == "pause":
            delay = pause_delay(self._pause, retry_after)
            self._refusals.refused("commands", reason_of(response))
            logger.error("commands: poll refused: %s; polling paused for %.0f s", reason_of(response), delay)
            return delay
        self._refusals.accepted("commands")
        self._pause.reset()
        if response.status == 204:
            self._backoff.reset()
            return 0.0
        if response.status != 200:
            delay = self._backoff.next_delay(retry_after)
            logger.warning("commands: poll answered %s; polling again in %.1f s", reason_of(response), delay)
            return delay
        self._backoff.reset()
        try:
            pulled = msgspec.json.decode(response.body, type=_Pulled)
        except msgspec.DecodeError as exc:
            logger.error("commands: malformed poll answer (%s); ignored", exc)
            return self._backoff.next_delay()
        for command in pulled.commands:
            self._handle(command)
        return 0.0

    def _handle(self, command: _PulledCommand) -> None:
        headers = {key.lower(): value for key, value in command.headers.items()}
        result = self._handler(headers, command.body.encode())
        self.handled += 1
        command_id = result.get("command_id") or headers.get("webhook-id")
        if not command_id:
            logger.error("commands: a pulled command has no id; its result cannot be reported")
            return
        # The handler answers {"command_id", "http_status", "result", "report"}; only "report" goes to the
        # server, and None means the same id is still running here (that run reports when it ends).
        report = result.get("report", result)
        if report is None:
            return
        self._report(str(command_id), report)

    def _report(self, command_id: str, result: dict[str, Any]) -> None:
        """POST the result until the server takes it: the command ran, its outcome must not be lost."""
        body = msgspec.json.encode(result)
        path = f"/api/v1/commands/{quote(command_id, safe='')}/result"
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while not self._stop.is_set():
            try:
                response = self._client.request("POST", path, body, self._json_headers)
            except HttpError as exc:
                logger.warning("commands: cannot report %s yet: %s", command_id, exc)
            else:
                verdict = classify(response.status)
                if verdict != "retry":
                    log = logger.info if verdict == "ack" else logger.error
                    log("commands: result of %s reported: HTTP %d", command_id, response.status)
                    return
            self._stop.wait(backoff.next_delay())
