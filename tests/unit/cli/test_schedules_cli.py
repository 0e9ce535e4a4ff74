"""``infragent schedules`` through typer's ``CliRunner`` on a temporary SQLite database: what the
database holds afterwards (read back through the store), what is printed, and the exit codes
scripts rely on (0 done, 1 refused, 2 bad input naming the field)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infragent.cli.schedules import schedules_app
from infragent.store import audit
from infragent.store import schedules as schedule_store
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client

RUNBOOKS = """\
runbooks:
  - name: nightly-check
    steps:
      - notify: "scheduled check of {node_id}"
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'schedules.db'}"


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    path = tmp_path / "runbooks.yaml"
    path.write_text(RUNBOOKS)
    return path


@pytest.fixture
def store(db: str) -> Iterator[SqlStore]:
    s = open_store(db)
    yield s
    s.close()


@pytest.fixture
def tenant(store: SqlStore) -> str:
    return create_client(store, "a@example.com", "Alpha", "http://127.0.0.1:9/h", now=1.0).client.id


def run(db: str, runbooks: Path, *args: str) -> tuple[int, str]:
    env = {"INFRAGENT_DATABASE_URL": db, "INFRAGENT_RUNBOOKS_PATH": str(runbooks)}
    result = CliRunner().invoke(schedules_app, list(args), env=env)
    return result.exit_code, result.output


def test_add_list_disable_enable_remove(db: str, runbooks: Path, store: SqlStore, tenant: str) -> None:
    code, out = run(
        db, runbooks, "add", "nightly", "--runbook", "nightly-check", "--cron", "30 2 * * *",
        "--timezone", "Europe/Berlin", "--missed", "run_once", "--node", "web-1", "--label", "service=web",
    )  # fmt: skip
    assert code == 0, out
    assert "added nightly" in out and "Europe/Berlin" in out and "next run 20" in out
    with store.read() as conn:
        [s] = schedule_store.list_schedules(conn, tenant)
    assert (s.runbook, s.tz, s.missed, s.node_id, s.labels) == (
        "nightly-check",
        "Europe/Berlin",
        "run_once",
        "web-1",
        {"service": "web"},
    )
    code, out = run(db, runbooks, "list")
    assert code == 0 and out.startswith("nightly") and "on  next 20" in out and "last: never" in out
    code, out = run(db, runbooks, "disable", "nightly")
    assert code == 0 and out.strip() == "nightly: off"
    assert "off next -" in run(db, runbooks, "list")[1]
    code, out = run(db, runbooks, "enable", s.id)
    assert code == 0 and "nightly: on; next run 20" in out
    code, out = run(db, runbooks, "remove", "nightly")
    assert code == 0 and "removed nightly" in out
    assert "no schedule yet" in run(db, runbooks, "list")[1]
    with store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, tenant, [s.id])]
        assert {e.actor for e in audit.entries(conn, tenant, [s.id])} == {"cli"}
    assert kinds == ["schedule.create", "schedule.disable", "schedule.enable", "schedule.delete"]


@pytest.mark.usefixtures("tenant")
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("--runbook", "other", "--every", "5m"),
            "unknown runbook 'other': known runbooks are nightly-check",
        ),
        (("--runbook", "nightly-check", "--cron", "0 25 * * *"), "cron: bad hour field '25' (column 3"),
        (("--runbook", "nightly-check", "--every", "10s"), "every: must be at least 60 seconds"),
        (("--runbook", "nightly-check", "--cron", "* * * * *", "--timezone", "Nowhere"), "unknown time zone"),
        (("--runbook", "nightly-check"), "exactly one of cron, every or at, not none"),
        (("--runbook", "nightly-check", "--every", "5m", "--label", "oops"), "write name=value"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    db: str, runbooks: Path, args: tuple[str, ...], words: str
) -> None:
    code, out = run(db, runbooks, "add", "s", *args)
    assert code == 2, out
    assert words in out


@pytest.mark.usefixtures("tenant")
def test_refusals_exit_1(db: str, runbooks: Path) -> None:
    assert run(db, runbooks, "add", "s", "--runbook", "nightly-check", "--every", "5m")[0] == 0
    code, out = run(db, runbooks, "add", "s", "--runbook", "nightly-check", "--every", "5m")
    assert code == 1 and "already exists" in out
    code, out = run(db, runbooks, "disable", "nope")
    assert code == 1 and "no schedule 'nope'" in out
