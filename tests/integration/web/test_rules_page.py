"""The ``/rules`` page against the real server: the tenant's rules with their alerts' state (and
none of another tenant's), the runbooks the server's settings load, and the check form answering
every problem at ``line:column`` (or the rule names when valid) without storing anything; the same
for a pasted runbook file, checked as the server loads its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.rules.files import parse_rule_text
from infragent.rules.state import AlertState, AlertStatus
from infragent.store import alerts
from infragent.store import rules as rule_store
from infragent.store.sql import SqlStore
from support.databases import create_client
from support.dom import by_test, one
from support.web import Site

RULE = """\
alert: {name}
kind: threshold
metric: system.cpu.utilization
function: avg
window: 1m
op: '>'
value: 0.9
"""
FILE = """\
groups:
  - name: web
    rules:
      - alert: SlowWeb
        kind: threshold
        metric: http.server.duration
        function: avg
        window: 5m
        op: '>'
        value: 2
      - alert: WebDown
        kind: threshold
        metric: up
        function: min
        window: 1m
        op: '<'
        value: 1
"""
RUNBOOKS = """\
runbooks:
  - name: restart-api
    match: {type: app_down, service: "api*", severity: [critical]}
    action: restart
    target: "{service}"
    params: {grace: "5"}
"""


def viewer_of(site: Site, client_id: str) -> dict[str, str]:
    """A new viewer of ``client_id``: the cookie and CSRF headers its browser sends."""
    return site.person(client_id, "viewer").browser_headers


def check(site: Site, headers: dict[str, str], text: str, htmx: bool = True, what: str = "rules") -> str:
    extra = {"HX-Request": "true"} if htmx else {}
    url = "/rules/validate" if what == "rules" else "/rules/runbooks/validate"
    r = site.http.post(url, data={"text": text}, headers=headers | extra)
    assert r.status_code == 200, r.text
    return r.text


def tenant(store: SqlStore, email: str, rule: str) -> str:
    """A tenant (with the default pack) plus its own rule ``rule``, one instance of it firing."""
    cid = create_client(store, email, "Acme", "http://127.0.0.1:9/h", now=time.time()).client.id
    with store.write() as conn:
        stored = rule_store.create_rule(
            conn, cid, parse_rule_text(RULE.format(name=rule), "t"), origin="api", now=time.time(), actor="t"
        )
        firing = AlertState(status=AlertStatus.FIRING, active_since=1.0, firing_since=2.0, last_value=0.95)
        alerts.write_instance(
            conn,
            cid,
            rule_id=stored.id,
            group_key="host=h1",
            labels={"host": "h1"},
            state=firing,
            incident_id=None,
            now=time.time(),
        )
    return cid


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The server loads its runbooks from a file, which the page lists."""
    runbooks = tmp_path / "runbooks.yaml"
    runbooks.write_text(RUNBOOKS)
    return Settings(runbooks_path=runbooks)


def test_the_tenants_rules_with_their_state_and_the_runbooks(site: Site) -> None:
    own = tenant(site.store, "a@example.com", "MineHot")
    tenant(site.store, "b@example.com", "TheirsHot")
    r = site.http.get("/rules", headers=viewer_of(site, own))
    assert r.status_code == 200, r.text
    rows = {row.attrs["data-rule"]: row for row in by_test(r.text, "rule-row")}
    with site.store.read() as conn:
        expected = {s.name for s in rule_store.load_rules(conn, own)}
    assert set(rows) == expected and "MineHot" in rows and "TheirsHot" not in r.text
    assert "firing 1" in rows["MineHot"].text and "api" in rows["MineHot"].text  # origin
    pack_rule = next(name for name in rows if name != "MineHot")
    assert "firing" not in rows[pack_rule].text
    [runbook] = by_test(r.text, "runbook-row")
    assert runbook.attrs["data-runbook"] == "restart-api"
    assert "api*" in runbook.text and "critical" in runbook.text and "grace=5" in runbook.text
    assert one(r.text, "runbook-action").text == "restart"


def test_a_pasted_rule_with_mistakes_lists_each_at_its_line_and_column(site: Site) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    bad = (
        RULE.format(name="Broken")
        .replace("function: avg", "function: average")
        .replace("value: 0.9", "value: hot")
    )
    html = check(site, headers, bad)
    problems = [p.text for p in by_test(html, "rules-problem")]
    assert len(problems) == 2, problems
    assert problems[0].startswith("4:11: ") and "average" in problems[0]
    assert problems[1].startswith("7:8: ")
    assert by_test(html, "rules-ok") == []
    assert "<html" not in html  # htmx gets the fragment only


def test_a_valid_rule_file_names_its_rules_and_saves_nothing(site: Site) -> None:
    own = tenant(site.store, "a@example.com", "Mine")
    headers = viewer_of(site, own)
    with site.store.read() as conn:
        before = len(rule_store.load_rules(conn, own))
    ok = one(check(site, headers, FILE), "rules-ok")
    assert [n.text for n in by_test(check(site, headers, FILE), "rules-ok-name")] == ["SlowWeb", "WebDown"]
    assert "2 rules" in ok.text
    page = check(site, headers, RULE.format(name="Single"), htmx=False)  # without htmx: the whole page
    assert "Single" in one(page, "rules-ok").text and by_test(page, "rule-row")
    with site.store.read() as conn:
        assert len(rule_store.load_rules(conn, own)) == before


@pytest.mark.parametrize("text", ["", "   \n", "alert: [unclosed", "groups: 3"])
def test_empty_or_broken_text_is_a_problem_not_an_error(site: Site, text: str) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    problems = by_test(check(site, headers, text), "rules-problem")
    assert problems and all(":" in p.text for p in problems)


def test_checking_needs_the_csrf_header_and_a_session(site: Site) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    no_csrf = {k: v for k, v in headers.items() if k != tokens.CSRF_HEADER}
    r = site.http.post("/rules/validate", data={"text": "x"}, headers=no_csrf)
    assert r.status_code == 403 and "CSRF" in one(r.text, "forbidden").text
    r = site.http.post("/rules/validate", data={"text": "x"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


BAD_RUNBOOKS = """\
runbooks:
  - name: restart-api
    match: {type: app_down, severity: fatal}
    action: restart
    params: {grace: 5}
  - name: restart-api
    target: "{host}"
"""


def test_a_viewer_checks_a_runbook_file_every_problem_at_its_line_and_column(site: Site) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    page = site.http.get("/rules", headers=headers).text
    form = one(page, "runbooks-validate")
    assert form.attrs["hx-post"] == "/rules/runbooks/validate" and one(page, "runbooks-validate-submit")
    html = check(site, headers, BAD_RUNBOOKS, what="runbooks")
    assert "<html" not in html and by_test(html, "runbooks-ok") == []
    problems = [p.text for p in by_test(html, "runbooks-problem")]
    assert [p.split(": ", 1)[0] for p in problems] == ["3:39", "5:21", "6:5", "6:11", "7:13"], problems
    assert "fatal" in problems[0] and "grace" in problems[1] and "action" in problems[2]
    assert "duplicate runbook name 'restart-api'" in problems[3] and "{host}" in problems[4]


def test_a_valid_runbook_file_names_its_runbooks_and_changes_nothing(site: Site) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    pasted = RUNBOOKS + "  - name: page-on-disk\n    match: {type: disk_full}\n    action: escalate\n"
    html = check(site, headers, pasted, what="runbooks")
    assert [n.text for n in by_test(html, "runbooks-ok-name")] == ["restart-api", "page-on-disk"]
    assert "2 runbooks" in one(html, "runbooks-ok").text
    page = check(site, headers, BAD_RUNBOOKS, htmx=False, what="runbooks")  # without htmx: the whole page
    assert one(page, "runbooks-problems") and len(by_test(page, "runbooks-problem")) == 5
    assert "{host}" in one(page, "runbooks-validate").text  # the pasted text is kept, to be fixed
    # The server's runbooks are still its file's: the check loads and writes nothing.
    rows = by_test(site.http.get("/rules", headers=headers).text, "runbook-row")
    assert [row.attrs["data-runbook"] for row in rows] == ["restart-api"]
    assert site.svc.settings.runbooks_path is not None
    assert site.svc.settings.runbooks_path.read_text() == RUNBOOKS


@pytest.mark.parametrize("text", ["", "runbooks: [unclosed", "runbooks: 3", "x" * (256 * 1024 + 1)])
def test_empty_broken_or_oversized_runbook_text_is_a_problem_not_an_error(site: Site, text: str) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    problems = by_test(check(site, headers, text, what="runbooks"), "runbooks-problem")
    assert len(problems) == 1 and problems[0].text.split(":")[0].isdigit()


def test_checking_a_runbook_file_needs_the_csrf_header_and_a_session(site: Site) -> None:
    headers = viewer_of(site, tenant(site.store, "a@example.com", "Mine"))
    no_csrf = {k: v for k, v in headers.items() if k != tokens.CSRF_HEADER}
    r = site.http.post("/rules/runbooks/validate", data={"text": RUNBOOKS}, headers=no_csrf)
    assert r.status_code == 403 and "CSRF" in one(r.text, "forbidden").text
    r = site.http.post("/rules/runbooks/validate", data={"text": RUNBOOKS})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
