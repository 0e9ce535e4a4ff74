"""store/rules.py on both databases: the three origins, what each writer may change, the audit trail,
the pack every tenant gets, the file re-sync, and the instance estimate behind the cap."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from infragent.rules.files import parse_rule_file, parse_rule_text
from infragent.rules.model import RuleGroup
from infragent.rules.pack import default_pack
from infragent.store import audit, rule_budget, rules
from infragent.store.metrics.model import SeriesInfo
from infragent.store.records import Registration
from infragent.store.schema import alert_instances, alert_rules
from infragent.store.sql import SqlStore
from support.databases import create_client

PACK = {r.name for g in default_pack() for r in g.rules}
CPU = """
alert: BusyBox
kind: threshold
metric: 'system.cpu.utilization{cpu.mode!="idle"}'
function: avg
window: 1m
by: [host]
combine: sum
op: ">"
value: 0.8
for: 1m
"""
FILE = """
groups:
  - name: files
    rules:
      - alert: DiskIo
        kind: threshold
        metric: system.disk.io
        function: rate
        window: 5m
        op: ">"
        value: 1e8
      - alert: Swap
        kind: threshold
        metric: 'system.memory.utilization{system.memory.state="swap"}'
        function: last
        window: 1m
        op: ">"
        value: 0.5
"""


def _kinds(store: SqlStore, client_id: str) -> list[tuple[str, str]]:
    with store.read() as conn:
        return [(e.kind, e.detail.get("name", "")) for e in audit.entries(conn, client_id)]


def test_a_registered_tenant_has_the_default_pack(store: SqlStore, client_reg: Registration) -> None:
    tenant = client_reg.client.id
    with store.read() as conn:
        found = rules.load_rules(conn, tenant)
        assert rules.tenants_with_rules(conn) == [tenant]
    assert {r.name for r in found} == PACK
    assert all(r.origin == "default" and r.enabled for r in found)
    shipped = {r.name: r for g in default_pack() for r in g.rules}
    assert all(r.rule == shipped[r.name] for r in found)  # the stored spec reads back to the same rule
    created = [name for kind, name in _kinds(store, tenant) if kind == "rule.created"]
    assert sorted(created) == sorted(PACK)


def test_installing_the_pack_again_changes_nothing(store: SqlStore, client_reg: Registration) -> None:
    tenant = client_reg.client.id
    before = _kinds(store, tenant)
    with store.write() as conn:
        assert rules.install_default_pack(conn, tenant, 2000.0) == rules.SyncResult()
        assert rules.ensure_default_packs(conn, 2000.0) == {}
    assert _kinds(store, tenant) == before


def test_ensure_default_packs_brings_back_and_repairs_pack_rules_keeping_the_switch(
    store: SqlStore, client_reg: Registration
) -> None:
    tenant = client_reg.client.id
    with store.write() as conn:
        rules.set_enabled(conn, tenant, "HighCpu", False, now=1500.0, actor="key:k")
        mine = (alert_rules.c.client_id == tenant) & (alert_rules.c.name == "HighMemory")
        spec = conn.execute(sa.select(alert_rules.c.spec).where(mine)).scalar_one()
        conn.execute(alert_rules.update().where(mine).values(spec={**spec, "value": 0.5}))  # an older pack
        conn.execute(
            alert_rules.delete().where(alert_rules.c.client_id == tenant, alert_rules.c.name == "HostSilent")
        )
        changed = rules.ensure_default_packs(conn, 2000.0)
    assert changed == {tenant: rules.SyncResult(added=("HostSilent",), updated=("HighMemory",))}
    with store.read() as conn:
        assert rules.get_rule(conn, tenant, "HighCpu").enabled is False  # type: ignore[union-attr]
        memory = rules.get_rule(conn, tenant, "HighMemory")
    assert memory is not None and memory.rule.condition.value == 0.9  # type: ignore[union-attr]


def test_api_rules_create_update_delete_with_audit(store: SqlStore, client_reg: Registration) -> None:
    tenant = client_reg.client.id
    rule = parse_rule_text(CPU, "body")
    with store.write() as conn:
        made = rules.create_rule(conn, tenant, rule, origin="api", now=2000.0, actor="key:k1")
        with pytest.raises(rules.RuleConflictError) as taken:
            rules.create_rule(conn, tenant, rule, origin="api", now=2001.0, actor="key:k1")
    assert taken.value.reason == "exists"
    assert (made.name, made.group, made.origin, made.enabled, made.updated_at) == (
        "BusyBox",
        "default",
        "api",
        True,
        2000.0,
    )
    tighter = parse_rule_text(CPU.replace("0.8", "0.7"), "body")
    with store.write() as conn:
        updated = rules.update_rule(conn, tenant, "BusyBox", tighter, now=2010.0, actor="key:k1")
        same = rules.update_rule(conn, tenant, "BusyBox", tighter, now=2020.0, actor="key:k1")
        assert rules.update_rule(conn, tenant, "Nope", tighter, now=2020.0, actor="key:k1") is None
    assert updated is not None and updated.rule.condition.value == 0.7  # type: ignore[union-attr]
    assert updated.updated_at == 2010.0 and same is not None and same.updated_at == 2010.0
    with store.write() as conn:
        assert rules.delete_rule(conn, tenant, "BusyBox", now=2030.0, actor="key:k1") is True
        assert rules.delete_rule(conn, tenant, "BusyBox", now=2031.0, actor="key:k1") is False
        assert rules.get_rule(conn, tenant, "BusyBox") is None
    mine = [(k, n) for k, n in _kinds(store, tenant) if n == "BusyBox"]
    assert mine == [("rule.created", "BusyBox"), ("rule.updated", "BusyBox"), ("rule.deleted", "BusyBox")]
    with store.read() as conn:
        entries = audit.entries(conn, tenant)
    assert audit.verify_chain(entries) is None
    update = next(e for e in entries if e.kind == "rule.updated")
    assert update.actor == "key:k1" and update.detail["changed"] == ["value"]


def test_pack_and_file_rules_are_switched_never_replaced_or_deleted(
    store: SqlStore, client_reg: Registration
) -> None:
    tenant = client_reg.client.id
    with store.write() as conn:
        rules.sync_file_rules(conn, tenant, parse_rule_file(FILE, "f.yaml"), 2000.0)
        for name in ("HighCpu", "DiskIo"):
            with pytest.raises(rules.RuleConflictError) as managed:
                rules.update_rule(conn, tenant, name, parse_rule_text(CPU, "b"), now=2001.0, actor="key:k")
            assert managed.value.reason == "managed" and "PATCH" in str(managed.value)
            with pytest.raises(rules.RuleConflictError):
                rules.delete_rule(conn, tenant, name, now=2001.0, actor="key:k")
            off = rules.set_enabled(conn, tenant, name, False, now=2002.0, actor="key:k")
            assert off is not None and off.enabled is False and off.rule.enabled is False
        assert rules.set_enabled(conn, tenant, "Nope", False, now=2002.0, actor="key:k") is None


def test_file_sync_adds_updates_removes_and_never_touches_api_or_pack_rules(
    store: SqlStore, client_reg: Registration
) -> None:
    tenant = client_reg.client.id
    groups = parse_rule_file(FILE, "f.yaml")
    with store.write() as conn:
        rules.create_rule(conn, tenant, parse_rule_text(CPU, "b"), origin="api", now=1900.0, actor="key:k")
        first = rules.sync_file_rules(conn, tenant, groups, 2000.0)
        again = rules.sync_file_rules(conn, tenant, groups, 2001.0)
        rules.set_enabled(conn, tenant, "Swap", False, now=2002.0, actor="key:k")
    assert first == rules.SyncResult(added=("DiskIo", "Swap"))
    assert again == rules.SyncResult()
    # next start: DiskIo changed, Swap gone, a new rule, and names the tenant and the pack hold
    changed = parse_rule_file(FILE.replace("1e8", "2e8"), "f.yaml")[0]
    disk = changed.rules[0]
    net = replace(disk, name="Net")
    clashes = (
        replace(disk, name="BusyBox"),
        replace(disk, name="HighCpu"),
        net,
        replace(net, severity="critical"),
    )
    with store.write() as conn:
        result = rules.sync_file_rules(conn, tenant, [RuleGroup("files", (disk, *clashes))], 3000.0)
    assert result == rules.SyncResult(
        added=("Net",), updated=("DiskIo",), removed=("Swap",), skipped=("BusyBox", "HighCpu", "Net")
    )
    with store.read() as conn:
        by_name = {r.name: r for r in rules.load_rules(conn, tenant)}
    assert by_name["BusyBox"].origin == "api" and by_name["BusyBox"].rule.kind == "threshold"
    assert by_name["BusyBox"].rule.condition.value == 0.8  # type: ignore[union-attr]
    assert by_name["HighCpu"].origin == "default"
    assert by_name["DiskIo"].origin == "file" and by_name["DiskIo"].rule.condition.value == 2e8  # type: ignore[union-attr]
    assert "Swap" not in by_name
    assert by_name["Net"].rule.severity == "warning"  # listed twice: the first one stays


def test_all_tenants_get_files_and_pack_and_isolation_holds(
    store: SqlStore, client_reg: Registration
) -> None:
    a = client_reg.client.id
    b = create_client(store, "b@example.com", "B", "http://127.0.0.1:9/h", now=1.0).client.id
    with store.write() as conn:
        synced = rules.sync_all_file_rules(conn, parse_rule_file(FILE, "f.yaml"), 2000.0)
        rules.create_rule(conn, a, parse_rule_text(CPU, "b"), origin="api", now=2000.0, actor="key:k")
    assert set(synced) == {a, b}
    with store.read() as conn:
        assert rules.get_rule(conn, b, "BusyBox") is None  # a's rule does not exist for b
        assert {r.name for r in rules.load_rules(conn, b)} == PACK | {"DiskIo", "Swap"}
    with store.write() as conn:
        assert rules.delete_rule(conn, b, "BusyBox", now=2001.0, actor="key:k") is False
        for r in rules.load_rules(conn, b):
            rules.set_enabled(conn, b, r.name, False, now=2002.0, actor="key:k")
        assert rules.tenants_with_rules(conn) == [a]


def test_delete_drops_the_rules_alert_instances(store: SqlStore, client_reg: Registration) -> None:
    tenant = client_reg.client.id
    with store.write() as conn:
        made = rules.create_rule(conn, tenant, parse_rule_text(CPU, "b"), origin="api", now=2000.0, actor="k")
        conn.execute(
            alert_instances.insert().values(
                client_id=tenant,
                rule_id=made.id,
                group_key="g" * 64,
                labels={"host": "a"},
                status="firing",
                memo={},
                updated_at=2000.0,
            )
        )
        assert rule_budget.instance_counts(conn, tenant) == {made.id: 1}
        rules.delete_rule(conn, tenant, "BusyBox", now=2001.0, actor="k")
        left = conn.execute(sa.select(sa.func.count()).select_from(alert_instances)).scalar()
    assert left == 0


def _series(host: str, name: str, **labels: str) -> SeriesInfo:
    return SeriesInfo(host, name, "1", "gauge", False, dict(labels))


def test_instance_estimate_counts_the_groups_a_selector_matches(
    store: SqlStore, client_reg: Registration
) -> None:
    cpu = [_series(h, "system.cpu.utilization", **{"cpu.mode": m}) for h in "abc" for m in ("user", "idle")]
    fs = [
        _series(
            "a",
            "system.filesystem.utilization",
            **{
                "system.filesystem.mountpoint": p,
                "system.filesystem.state": s,
                "system.filesystem.mode": "rw",
            },
        )
        for p in ("/", "/var")
        for s in ("used", "free")
    ]
    series = cpu + fs
    pack = {r.name: r for g in default_pack() for r in g.rules}
    assert rule_budget.estimate_instances(pack["HighCpu"], series) == 3  # by host
    assert rule_budget.estimate_instances(pack["FilesystemAlmostFull"], series) == 2  # by host and mount
    assert rule_budget.estimate_instances(pack["HostSilent"], series) == 3  # every host
    assert rule_budget.estimate_instances(pack["HighLoadPerCore"], series) == 0  # no such series yet
    per_series = parse_rule_text(CPU.replace("by: [host]\n", ""), "b")
    assert rule_budget.estimate_instances(per_series, series) == 3  # no `by`: one per series (idle excluded)
    tenant = client_reg.client.id
    with store.read() as conn:
        budget = rule_budget.instance_budget(conn, tenant, per_series, series, cap=10)
    # the pack over these series: HostSilent 3, HighCpu 3, FilesystemAlmostFull 2, FilesystemFullIn4h 2
    assert (budget.instances, budget.others, budget.exceeded) == (3, 10, True)
    assert "max_alert_instances_per_tenant" in budget.refusal("BusyBox")


def test_a_stored_spec_that_no_longer_validates_is_skipped_not_fatal(
    store: SqlStore, client_reg: Registration, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = client_reg.client.id
    with store.write() as conn:
        made = rules.create_rule(conn, tenant, parse_rule_text(CPU, "b"), origin="api", now=2000.0, actor="k")
        mine = alert_rules.c.id == made.id
        spec = conn.execute(sa.select(alert_rules.c.spec).where(mine)).scalar_one()
        conn.execute(alert_rules.update().where(mine).values(spec={**spec, "function": "median"}))
    with store.read() as conn:
        names = {r.name for r in rules.load_rules(conn, tenant)}
        assert rules.get_rule(conn, tenant, "BusyBox") is None
    assert names == PACK  # the tenant's other rules are still there
    assert "BusyBox" in caplog.text and "no longer validates" in caplog.text
    with store.write() as conn:  # it can still be switched off
        assert rules.set_enabled(conn, tenant, "BusyBox", False, now=2001.0, actor="k") is None
        assert conn.execute(sa.select(alert_rules.c.enabled).where(mine)).scalar_one() is False
