"""Every setting has its row in docs/configuration.md, with its variable and its real default.

Why a test: settings are added by many hands (the notification settings came with #13), and a
setting missing from the table, or documented with a default the code no longer has, is found by a
user only when the server behaves otherwise than the page says.
"""

from __future__ import annotations

import re
from pathlib import Path

from infragent.config import ENV_PREFIX, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _rows(text: str) -> dict[str, list[str]]:
    """Table rows of the settings table by setting name (a row may name several: `host`, `port`)."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            rows[name] = cells
    return rows


def test_every_setting_has_a_row_naming_its_variable() -> None:
    rows = _rows((DOCS / "configuration.md").read_text())
    missing = [name for name in Settings.model_fields if name not in rows]
    assert missing == []
    wrong_variable = [
        name for name in Settings.model_fields if f"`{ENV_PREFIX}{name.upper()}`" not in rows[name][1]
    ]
    assert wrong_variable == []


def test_documented_numeric_defaults_are_the_code_defaults() -> None:
    rows = _rows((DOCS / "configuration.md").read_text())
    defaults = Settings()
    wrong = []
    for name, info in Settings.model_fields.items():
        value = getattr(defaults, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or "," in rows[name][0]:
            continue
        first = rows[name][2].split(" ")[0].strip("`")
        if first.replace(".", "", 1).isdigit() and float(first) != float(value):
            wrong.append((name, first, value, info.default))
    assert wrong == []


def test_notification_settings_are_in_the_notifications_page_too() -> None:
    page = (DOCS / "notifications.md").read_text()
    missing = [n for n in Settings.model_fields if n.startswith("notify_") and f"`{n}`" not in page]
    assert missing == []
