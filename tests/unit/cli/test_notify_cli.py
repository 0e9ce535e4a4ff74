"""``infragent notify`` and ``infragent silences`` through typer's ``CliRunner`` on a temporary
SQLite database: what the database holds afterwards (read back through the store), what is
printed, and the exit codes scripts rely on. A test send goes to a Slack stand-in on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from infragent.cli.notify import notify_app, silences_app
from infragent.store import audit
from infragent.store import notify_config as nc
from infragent.store.notify_schema import notify_deliveries
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client
from support.standins.slack import SlackStandIn


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notify.db'}"


@pytest.fixture
def store(db: str) -> Iterator[SqlStore]:
    s = open_store(db)
    yield s
    s.close()


@pytest.fixture
def tenant(store: SqlStore) -> str:
    return create_client(store, "a@example.com", "Alpha", "http://127.0.0.1:9/h", now=1.0).client.id


def run(app: typer.Typer, db: str, *args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"INFRAGENT_DATABASE_URL": db, **env})
    return result.exit_code, result.output


def test_silences_are_added_listed_and_expired(db: str, store: SqlStore, tenant: str) -> None:
    code, out = run(
        silences_app, db, "add", "--match", 'host="web-1"', "--match", 'alertname=~"Disk.*"',
        "--for", "2h", "--comment", "disk swap", "--author", "ann",
    )  # fmt: skip
    assert code == 0, out
    with store.read() as conn:
        (silence,) = nc.active_silences(conn, tenant, time.time())
    assert [(m.name, m.op, m.value) for m in silence.matchers] == [
        ("host", "=", "web-1"),
        ("alertname", "=~", "Disk.*"),
    ]
    assert silence.created_by == "ann" and silence.comment == "disk swap"
    assert 7190 < silence.ends_at - silence.starts_at <= 7200 and silence.id in out

    code, out = run(silences_app, db, "list")
    assert code == 0 and silence.id in out and "active" in out and 'host="web-1"' in out
    code, out = run(silences_app, db, "expire", silence.id)
    assert code == 0 and "expired" in out
    assert silence.id not in run(silences_app, db, "list")[1]
    assert silence.id in run(silences_app, db, "list", "--all")[1]
    assert run(silences_app, db, "expire", "no-such-id")[0] == 1
    with store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, tenant, [silence.id])]
    assert kinds == ["notify.silence.created", "notify.silence.expired"]


def test_a_bad_silence_names_the_matcher_and_exits_2(db: str, store: SqlStore, tenant: str) -> None:
    code, out = run(silences_app, db, "add", "--match", 'host="web-1"', "--match", "nonsense", "--for", "2h",
                    "--comment", "x")  # fmt: skip
    assert code == 2 and "--match 'nonsense'" in out
    code, out = run(silences_app, db, "add", "--match", 'host="web-1"', "--for", "2 hours", "--comment", "x")
    assert code == 2 and "--for" in out
    code, out = run(silences_app, db, "add", "--match", 'host="web-1"', "--for", "1h", "--comment", " ")
    assert code == 2 and "--comment" in out
    with store.read() as conn:
        assert nc.list_silences(conn, tenant, state=None, now=time.time()) == []


def test_several_tenants_need_client(db: str, store: SqlStore, tenant: str) -> None:
    other = create_client(store, "b@example.com", "Beta", "http://127.0.0.1:9/h", now=1.0).client.id
    code, out = run(notify_app, db, "channels", "list")
    assert code == 2 and tenant in out and other in out
    assert run(notify_app, db, "channels", "list", "--client", "nope")[0] == 2
    code, out = run(notify_app, db, "channels", "list", "--client", other)
    assert code == 0 and "no channel yet" in out


def test_channels_list_never_prints_a_secret_and_test_sends_once(
    db: str, store: SqlStore, tenant: str
) -> None:
    with SlackStandIn() as slack:
        with store.write() as conn:
            nc.create_channel(
                conn, tenant, name="ops", kind="slack", settings={}, secrets={"url": slack.webhook_url},
                actor="t", now=1.0,
            )  # fmt: skip
        code, out = run(notify_app, db, "channels", "list")
        assert code == 0 and "ops" in out and "secrets=url" in out
        assert slack.webhook_url.rsplit("/", 1)[-1] not in out

        code, out = run(notify_app, db, "test", "ops", "--preview")
        assert code == 0 and "Disk almost full" in out and slack.received == []

        allow = {"INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
        code, out = run(notify_app, db, "test", "ops", **allow)
        assert code == 0 and "ops: delivered (status 200)" in out
        slack.wait_for(1)
        slack.fail_next(1, 500)
        code, out = run(notify_app, db, "test", "ops", **allow)
        assert code == 1 and "status 500" in out
        assert len(slack.received) == 2
        # without loopback allowed, the guarded client refuses the address: a failure, not a crash
        code, out = run(notify_app, db, "test", "ops")
        assert code == 1 and slack.webhook_url.rsplit("/", 1)[-1] not in out
    assert run(notify_app, db, "test", "nope")[0] == 2


def test_deliveries_are_listed_and_a_dead_one_retried(db: str, store: SqlStore, tenant: str) -> None:
    now = time.time()
    with store.write() as conn:
        ch = nc.create_channel(
            conn, tenant, name="ops", kind="inapp", settings={}, secrets={}, actor="t", now=1.0
        )
        for did, status in (("d-ok", "delivered"), ("d-dead", "dead")):
            conn.execute(
                notify_deliveries.insert().values(
                    id=did, client_id=tenant, channel_id=ch.id, kind="firing",
                    message={"incidents": [{"id": "i1", "title": "CPU hot"}]}, status=status, attempts=3,
                    created_at=now, next_attempt_at=now, deadline_at=now, cause=did,
                    last_error="HTTP 503" if status == "dead" else None,
                )
            )  # fmt: skip
    code, out = run(notify_app, db, "deliveries")
    assert code == 0 and "d-ok" in out and "d-dead" in out and "CPU hot" in out
    code, out = run(notify_app, db, "deliveries", "--dead")
    assert code == 0 and "d-dead" in out and "d-ok" not in out and "HTTP 503" in out
    assert run(notify_app, db, "retry", "d-ok")[0] == 1  # not dead
    code, out = run(notify_app, db, "retry", "d-dead")
    assert code == 0 and "pending again" in out
    with store.read() as conn:
        row = conn.execute(notify_deliveries.select().where(notify_deliveries.c.id == "d-dead")).one()
        assert row.status == "pending"
        assert [e.actor for e in audit.entries(conn, tenant, ["d-dead"])] == ["cli"]
    assert run(notify_app, db, "retry", "missing")[0] == 1
