"""``INFRAGENT_RULE_FILES`` as docs/configuration.md says: a JSON list in the variable (or one path);
the config file's YAML list as before; anything else a ConfigError naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from infragent.config import load_settings
from infragent.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["/etc/a.yaml", "/etc/b.yaml"]', (Path("/etc/a.yaml"), Path("/etc/b.yaml"))),
        (' ["/etc/a.yaml"] ', (Path("/etc/a.yaml"),)),
        ("[]", ()),
        ("/etc/rules.yaml", (Path("/etc/rules.yaml"),)),
        ("", ()),
    ],
)
def test_rule_files_from_the_environment(value: str, expected: tuple[Path, ...]) -> None:
    assert load_settings(environ={"INFRAGENT_RULE_FILES": value}).rule_files == expected


def test_rule_files_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rule_files: [/etc/a.yaml, /etc/b.yaml]\n")
    assert load_settings(cfg, environ={}).rule_files == (Path("/etc/a.yaml"), Path("/etc/b.yaml"))


@pytest.mark.parametrize("value", ['["/etc/a.yaml",', "[1, 2]", '["/a.yaml", {"b": 1}]'])
def test_a_bad_rule_files_variable_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match="INFRAGENT_RULE_FILES"):
        load_settings(environ={"INFRAGENT_RULE_FILES": value})
