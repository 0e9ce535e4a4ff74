"""A registered client whose webhook is the real SDK webhook app, counting the actions it runs.

Why the client's credentials are minted before it is registered: the receiver must know the webhook
secret to verify commands, and the client must be registered with the URL the receiver actually got
(port 0, no port guessed ahead).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infragent.actions.webhook import WebhookDispatcher
from infragent.auth.registration import mint
from infragent.model import ActionSpec
from infragent.outbound.policy import OutboundPolicy
from infragent.responder.loop import Responder, ResponderConfig
from infragent.responder.runbooks import DEFAULT_RUNBOOKS
from infragent.sdk import Client, Command
from infragent.store.records import Registration
from infragent.store.sql import SqlStore
from infragent.store.wakeup import Wakeup
from infragent.store.workqueue import SqlWorkQueue
from support.databases import create_client, register_agent
from support.servers import serve


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    reg: Registration
    url: str
    runs: Counter[str] = field(default_factory=Counter)
    commands: list[Command] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return sum(self.runs.values())


@pytest.fixture
def receiver(store: SqlStore, tmp_path: Path) -> Iterator[Receiver]:
    credentials = mint()
    sdk = Client(
        "http://127.0.0.1:9",
        credentials.key.plaintext,
        credentials.webhook_secret,
        service="web",
        data_dir=tmp_path / "sdk",
    )
    recv: Receiver | None = None

    @sdk.action("restart", params={"name": r"[a-z0-9_-]+"})
    def restart(command: Command) -> str:
        assert recv is not None
        recv.entered.set()
        if recv.gate is not None:
            recv.gate.wait(30)
        with recv.lock:
            recv.runs[command.command_id] += 1
            recv.commands.append(command)
        return f"restarted {command.target}"

    with serve(sdk.webhook_app()) as base:
        url = f"{base}/webhooks/agent"
        reg = create_client(store, "ops@example.com", "Acme", url, now=1.0, credentials=credentials)
        recv = Receiver(reg, url)
        yield recv
    sdk.close()


def register_node(
    store: SqlStore, reg: Registration, node_id: str, actions: tuple[str, ...] = ("restart",)
) -> None:
    specs = [ActionSpec(a, {"name": r"[a-z0-9_-]+"}) for a in actions]
    register_agent(
        store, reg.client.id, node_id, kind="sdk", command_mode="push", actions=specs, labels={}, now=1.0
    )


_made: list[Responder] = []


@pytest.fixture(autouse=True)
def _close_responders() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def make_responder(store: SqlStore, clock: Clock | None = None, **kw: object) -> Responder:
    config = ResponderConfig(lease_s=30, cooldown_s=300, sweep_interval_s=60)
    args: dict[str, object] = {"runbooks": DEFAULT_RUNBOOKS, "config": config}
    if clock is not None:
        args["clock"] = clock
    args.update(kw)
    args.setdefault("wakeup", Wakeup())
    # the receivers of the tests run on this machine: loopback is allowed explicitly, as by ``up``
    policy = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
    dispatcher = WebhookDispatcher(policy=policy, timeout_s=5, retries=1, sleep=lambda _s: None)
    responder = Responder(SqlWorkQueue(store), dispatcher, **args)  # type: ignore[arg-type]
    _made.append(responder)
    return responder
