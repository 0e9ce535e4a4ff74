"""Agent settings: every variable, its default, and a clear error naming a bad value."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from infragent.agent.settings import MiB, default_data_dir, load_settings, parse_size
from infragent.errors import ConfigError

BASE = {"INFRAGENT_SERVER_URL": "http://monitor.example:8470", "INFRAGENT_API_KEY": "ia_k_s"}


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({**BASE, "XDG_DATA_HOME": str(tmp_path)})
    assert s.server_url == "http://monitor.example:8470"
    assert s.api_key == "ia_k_s"
    assert s.node_id == socket.gethostname()
    assert (s.health_check_host, s.health_check_port) == ("127.0.0.1", 8471)
    assert s.metrics_interval == 10.0
    assert s.buffer_max_size == 100 * MiB
    assert s.log_level == "info"
    assert s.command_mode == "pull"
    assert s.webhook_secret is None and s.journal is False
    assert s.checks == () and s.actions == ()
    assert s.data_dir == default_data_dir({"XDG_DATA_HOME": str(tmp_path)})
    assert s.labels == {}


def test_every_variable_is_read() -> None:
    s = load_settings(
        {
            **BASE,
            "INFRAGENT_WEBHOOK_SECRET": "whsec_abc",
            "NODE_ID": "web-1",
            "CUSTOMER_ID": "acme",
            "NODE_REGION": "eu-west-1",
            "ENVIRONMENT": "prod",
            "HEALTH_CHECK_HOST": "0.0.0.0",
            "HEALTH_CHECK_PORT": "9100",
            "METRICS_INTERVAL": "2.5",
            "BUFFER_MAX_SIZE": "50MB",
            "LOG_LEVEL": "DEBUG",
            "INFRAGENT_AGENT_DATA_DIR": "/srv/agent",
            "COMMAND_MODE": "push",
            "INFRAGENT_PUSH_HOST": "10.0.0.5",
            "INFRAGENT_PUSH_PORT": "9443",
            "INFRAGENT_AGENT_JOURNAL": "1",
        }
    )
    assert s.webhook_secret == "whsec_abc"
    assert s.node_id == "web-1"
    assert s.labels == {"region": "eu-west-1", "environment": "prod", "customer": "acme"}
    assert (s.health_check_host, s.health_check_port) == ("0.0.0.0", 9100)
    assert s.metrics_interval == 2.5
    assert s.buffer_max_size == 50 * MiB
    assert s.log_level == "debug"
    assert s.data_dir == Path("/srv/agent") and s.spool_dir == Path("/srv/agent/spool")
    assert s.command_mode == "push"
    assert (s.push_host, s.push_port) == ("10.0.0.5", 9443)
    assert s.journal is True


def test_secrets_are_not_in_repr() -> None:
    s = load_settings({**BASE, "INFRAGENT_WEBHOOK_SECRET": "whsec_topsecret"})
    assert "ia_k_s" not in repr(s) and "whsec_topsecret" not in repr(s)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", MiB),
        ("50MB", 50 * MiB),
        ("50mb", 50 * MiB),
        ("512KiB", 512 * 1024),
        ("1G", 1024 * MiB),
        ("1.5M", int(1.5 * MiB)),
        (" 64 kB ", 64 * 1024),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METRICS_INTERVAL", "abc"),
        ("METRICS_INTERVAL", "0"),
        ("METRICS_INTERVAL", "nan"),
        ("HEALTH_CHECK_PORT", "70000"),
        ("HEALTH_CHECK_PORT", "http"),
        ("INFRAGENT_PUSH_PORT", "65536"),
        ("BUFFER_MAX_SIZE", "lots"),
        ("BUFFER_MAX_SIZE", "1KB"),
        ("LOG_LEVEL", "chatty"),
        ("COMMAND_MODE", "carrier-pigeon"),
        ("INFRAGENT_SERVER_URL", "ftp://x"),
        ("INFRAGENT_SERVER_URL", "monitor.example"),
        ("INFRAGENT_AGENT_JOURNAL", "maybe"),
        ("NODE_ID", "x" * 256),
    ],
)
def test_bad_values_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, name: value})
    assert err.value.key == name
    assert name in str(err.value)


@pytest.mark.parametrize("missing", ["INFRAGENT_SERVER_URL", "INFRAGENT_API_KEY"])
def test_server_and_key_are_required_to_run(missing: str) -> None:
    env = dict(BASE)
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)
    assert load_settings(env, require_server=False).node_id  # --once needs neither


def test_config_file_with_checks_and_env_override(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    checks = [{"type": "tcp", "name": "db", "host": "127.0.0.1", "port": 5432}]
    path.write_text(json.dumps({"node_id": "from-file", "metrics_interval": 30, "checks": checks}))
    s = load_settings({**BASE, "METRICS_INTERVAL": "5"}, path)
    assert s.node_id == "from-file"
    assert s.metrics_interval == 5.0  # the environment wins
    assert [c.name for c in s.checks] == ["db"]


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text('node_id = "t"\nbuffer_max_size = "1MB"\n')
    assert load_settings(BASE, toml).buffer_max_size == MiB
    yaml = tmp_path / "agent.yaml"
    yaml.write_text("node_id: y\nchecks:\n  - {type: tcp, name: web, host: 127.0.0.1, port: 80}\n")
    assert load_settings(BASE, yaml).node_id == "y"


@pytest.mark.parametrize(
    ("content", "suffix", "key"),
    [
        ('{"nodeid": "x"}', ".json", "nodeid"),
        ('{"checks": [{"type": "tcp", "name": "db", "port": 5432}]}', ".json", "checks[0] (db).host"),
        ('{"checks": "db"}', ".json", "checks"),
        ("{not json", ".json", "agent.json"),
        ("node_id: [", ".yaml", "agent.yaml"),
        ("node_id = ", ".toml", "agent.toml"),
        ("node_id: x", ".ini", "agent.ini"),
    ],
)
def test_config_file_errors_are_named(tmp_path: Path, content: str, suffix: str, key: str) -> None:
    path = tmp_path / f"agent{suffix}"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_settings(BASE, path)
    assert key in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(BASE, tmp_path / "nope.json")
