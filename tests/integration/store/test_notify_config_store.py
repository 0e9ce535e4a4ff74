"""The notification configuration in the store (``store/notify_config.py``), on SQLite and
PostgreSQL: channels with write-only secrets, the versioned route tree, silences, inhibit rules,
tenant isolation and the audit entries each change leaves (never with a secret value)."""

from __future__ import annotations

import orjson
import pytest

from infragent.notify.errors import NotifyConflictError, NotifyNotFoundError
from infragent.notify.model import Matcher
from infragent.store import audit
from infragent.store import notify_config as nc
from infragent.store.sql import SqlStore
from support.databases import create_client

SLACK_URL = "https://hooks.slack.example/services/T000/B000/very-secret-token"
NEW_SLACK_URL = "https://hooks.slack.example/services/T000/B000/rotated-secret"


def _client(store: SqlStore, email: str = "a@example.com", company: str = "Alpha") -> str:
    return create_client(store, email, company, "http://127.0.0.1:9/h", now=1.0).client.id


def _audit_text(store: SqlStore, client_id: str) -> str:
    with store.read() as conn:
        return orjson.dumps([(e.kind, e.detail) for e in audit.entries(conn, client_id)]).decode()


def test_channels_keep_secrets_write_only_and_names_unique_per_tenant(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    with store.write() as conn:
        ch = nc.create_channel(
            conn,
            alpha,
            name="ops",
            kind="slack",
            settings={},
            secrets={"url": SLACK_URL},
            actor="ann",
            now=10.0,
        )
        # the same name in another tenant is another channel
        nc.create_channel(
            conn,
            beta,
            name="ops",
            kind="inapp",
            settings={"roles": ["admin"]},
            secrets={},
            actor="b",
            now=10.0,
        )
    with store.write() as conn, pytest.raises(NotifyConflictError):
        nc.create_channel(
            conn, alpha, name="ops", kind="inapp", settings={}, secrets={}, actor="ann", now=11.0
        )
    with store.read() as conn:
        got = nc.get_channel(conn, alpha, ch.id)
        assert got == ch and got.secrets == {"url": SLACK_URL}
        assert [c.name for c in nc.list_channels(conn, alpha)] == ["ops"]
        assert set(nc.channels_by_name(conn, alpha, ["ops", "missing"])) == {"ops"}
        assert nc.channels_by_name(conn, alpha, []) == {}
        with pytest.raises(NotifyNotFoundError):
            nc.get_channel(conn, beta, ch.id)
    public = nc.public_channel(got)
    assert public == {
        "id": ch.id,
        "name": "ops",
        "kind": "slack",
        "settings": {},
        "secrets_set": ["url"],
        "enabled": True,
        "created_at": 10.0,
        "updated_at": 10.0,
    }
    assert "very-secret-token" not in repr(got)
    assert "very-secret-token" not in _audit_text(store, alpha)


def test_update_replaces_named_secrets_and_keeps_the_rest(store: SqlStore) -> None:
    alpha = _client(store)
    with store.write() as conn:
        ch = nc.create_channel(
            conn,
            alpha,
            name="mail",
            kind="email",
            settings={"host": "smtp.example.com", "port": 587, "to": ["a@example.com"]},
            secrets={"password": "pw-one"},
            actor="ann",
            now=10.0,
        )
        other = nc.create_channel(
            conn, alpha, name="taken", kind="inapp", settings={}, secrets={}, actor="ann", now=10.0
        )
    with store.write() as conn:
        # no secrets given: the password stays
        up = nc.update_channel(
            conn,
            alpha,
            ch.id,
            settings={"host": "smtp2.example.com", "port": 25},
            enabled=False,
            actor="b",
            now=20.0,
        )
        assert up.settings == {"host": "smtp2.example.com", "port": 25}
        assert up.secrets == {"password": "pw-one"} and not up.enabled and up.updated_at == 20.0
        up = nc.update_channel(
            conn, alpha, ch.id, secrets={"password": "pw-two"}, name="mail-2", actor="b", now=21.0
        )
        assert (up.name, up.secrets, up.created_at) == ("mail-2", {"password": "pw-two"}, 10.0)
        up = nc.update_channel(conn, alpha, ch.id, secrets={"password": None}, actor="b", now=22.0)
        assert up.secrets == {}
    with store.write() as conn, pytest.raises(NotifyConflictError):
        nc.update_channel(conn, alpha, ch.id, name=other.name, actor="b", now=23.0)
    beta = _client(store, "b@example.com", "Beta")
    with store.write() as conn, pytest.raises(NotifyNotFoundError):
        nc.update_channel(conn, beta, ch.id, enabled=True, actor="b", now=23.0)
    text = _audit_text(store, alpha)
    assert "pw-one" not in text and "pw-two" not in text
    with store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, alpha, [ch.id])]
    assert kinds == ["notify.channel.created"] + ["notify.channel.updated"] * 3


def test_a_channel_a_route_names_cannot_be_deleted(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    with store.write() as conn:
        ch = nc.create_channel(
            conn, alpha, name="ops", kind="slack", settings={}, secrets={"url": SLACK_URL}, actor="a", now=1.0
        )
    with store.write() as conn, pytest.raises(NotifyConflictError, match="route"):
        nc.delete_channel(conn, alpha, ch.id, actor="a", now=2.0, in_use={"ops"})
    with store.write() as conn, pytest.raises(NotifyNotFoundError):
        nc.delete_channel(conn, beta, ch.id, actor="b", now=2.0)
    with store.write() as conn:
        nc.delete_channel(conn, alpha, ch.id, actor="a", now=3.0, in_use={"other"})
    with store.read() as conn:
        assert nc.list_channels(conn, alpha) == []
        assert [e.kind for e in audit.entries(conn, alpha, [ch.id])][-1] == "notify.channel.deleted"


def test_route_tree_versions_refuse_a_stale_writer(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    tree = {"receivers": ["ops"], "group_by": ["host"], "routes": [{"id": "db", "matchers": ['team="db"']}]}
    with store.read() as conn:
        assert nc.get_routing(conn, alpha) is None
    with store.write() as conn, pytest.raises(NotifyConflictError):
        nc.put_routing(conn, alpha, tree, expected_version=3, actor="a", now=1.0)
    with store.write() as conn:
        first = nc.put_routing(conn, alpha, tree, expected_version=0, actor="a", now=1.0)
    assert (first.version, first.tree, first.updated_by) == (1, tree, "a")
    with store.write() as conn:
        second = nc.put_routing(conn, alpha, {"receivers": []}, expected_version=1, actor="b", now=2.0)
    with store.write() as conn, pytest.raises(NotifyConflictError, match="version 2"):
        nc.put_routing(conn, alpha, tree, expected_version=1, actor="a", now=3.0)
    with store.write() as conn:
        third = nc.put_routing(conn, alpha, tree, expected_version=None, actor="cli", now=4.0)
    assert (second.version, third.version) == (2, 3)
    with store.read() as conn:
        assert nc.get_routing(conn, alpha) == third
        assert nc.get_routing(conn, beta) is None
        kinds = [e.kind for e in audit.entries(conn, alpha, ["routes"])]
    assert kinds == ["notify.routes.updated"] * 3


def test_silences_by_state_expire_and_stay_in_their_tenant(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    web = (Matcher("host", "=", "web-1"), Matcher("severity", "=~", "crit.*"))
    with store.write() as conn:
        active = nc.create_silence(
            conn,
            alpha,
            matchers=web,
            starts_at=100.0,
            ends_at=500.0,
            created_by="ann",
            comment="deploy",
            now=100.0,
        )
        pending = nc.create_silence(
            conn,
            alpha,
            matchers=(Matcher("team", "!=", "db"),),
            starts_at=300.0,
            ends_at=400.0,
            created_by="ann",
            comment="window",
            incident_id="inc-1",
            now=100.0,
        )
        over = nc.create_silence(
            conn,
            alpha,
            matchers=web,
            starts_at=50.0,
            ends_at=150.0,
            created_by="bob",
            comment="old",
            now=50.0,
        )
    with store.read() as conn:
        assert nc.get_silence(conn, alpha, active.id) == active
        assert nc.get_silence(conn, alpha, pending.id).incident_id == "inc-1"
        assert [s.id for s in nc.list_silences(conn, alpha, state="active", now=200.0)] == [active.id]
        assert [s.id for s in nc.list_silences(conn, alpha, state="pending", now=200.0)] == [pending.id]
        assert [s.id for s in nc.list_silences(conn, alpha, state="expired", now=200.0)] == [over.id]
        assert len(nc.list_silences(conn, alpha, state=None, now=200.0)) == 3
        assert len(nc.list_silences(conn, alpha, state=None, now=200.0, limit=2)) == 2
        assert [s.id for s in nc.active_silences(conn, alpha, 350.0)] == [pending.id, active.id]
        assert nc.list_silences(conn, beta, state=None, now=200.0) == []
        with pytest.raises(NotifyNotFoundError):
            nc.get_silence(conn, beta, active.id)
    with store.write() as conn:
        expired = nc.expire_silence(conn, alpha, active.id, actor="bob", now=250.0)
        # expiring one already over changes nothing
        assert nc.expire_silence(conn, alpha, over.id, actor="bob", now=250.0) == over
    assert expired.ends_at == 250.0 and expired.matchers == web
    with store.write() as conn, pytest.raises(NotifyNotFoundError):
        nc.expire_silence(conn, beta, pending.id, actor="x", now=250.0)
    with store.read() as conn:
        assert nc.active_silences(conn, alpha, 260.0) == []
        kinds = [e.kind for e in audit.entries(conn, alpha, [active.id])]
    assert kinds == ["notify.silence.created", "notify.silence.expired"]


def test_inhibit_rules_are_listed_deleted_and_named_once(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    with store.write() as conn:
        rule = nc.create_inhibit_rule(
            conn,
            alpha,
            name="host down mutes the host",
            source=(Matcher("alertname", "=", "host_silent"),),
            target=(Matcher("alertname", "!=", "host_silent"),),
            equal=("host",),
            actor="ann",
            now=1.0,
        )
        unnamed = nc.create_inhibit_rule(
            conn, alpha, name="", source=(), target=(Matcher("a", "=", "b"),), equal=(), actor="ann", now=2.0
        )
        nc.create_inhibit_rule(conn, alpha, name="", source=(), target=(), equal=(), actor="ann", now=3.0)
    with store.write() as conn, pytest.raises(NotifyConflictError):
        nc.create_inhibit_rule(
            conn, alpha, name=rule.name, source=(), target=(), equal=(), actor="a", now=4.0
        )
    with store.read() as conn:
        listed = nc.list_inhibit_rules(conn, alpha)
        assert listed[:2] == [rule, unnamed] and len(listed) == 3
        assert nc.list_inhibit_rules(conn, beta) == []
    with store.write() as conn, pytest.raises(NotifyNotFoundError):
        nc.delete_inhibit_rule(conn, beta, rule.id, actor="b", now=5.0)
    with store.write() as conn:
        nc.delete_inhibit_rule(conn, alpha, rule.id, actor="ann", now=5.0)
    with store.read() as conn:
        assert rule not in nc.list_inhibit_rules(conn, alpha)
        assert [e.kind for e in audit.entries(conn, alpha, [rule.id])] == [
            "notify.inhibit.created",
            "notify.inhibit.deleted",
        ]


def test_matchers_round_trip_through_their_stored_shape() -> None:
    ms = (Matcher("host", "=", "web-1"), Matcher("sev", "!~", "info|debug"))
    doc = nc.matchers_to_json(ms)
    assert doc == [
        {"name": "host", "op": "=", "value": "web-1"},
        {"name": "sev", "op": "!~", "value": "info|debug"},
    ]
    assert nc.matchers_from_json(doc) == ms
