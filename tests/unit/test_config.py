from __future__ import annotations

from pathlib import Path

import pytest

from infragent.config import load_settings
from infragent.errors import ConfigError


def test_defaults_use_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = load_settings(environ={"INFRAGENT_DATA_DIR": str(tmp_path)})
    assert s.resolved_database_url == f"sqlite:///{tmp_path}/infragent.db"
    assert s.port == 8470 and s.cooldown_s == 300 and s.sweep_interval_s == 30


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9000\ncooldown_s: 10\n")
    s = load_settings(cfg, environ={"INFRAGENT_COOLDOWN_S": "20"}, log_level="debug")
    assert (s.port, s.cooldown_s, s.log_level) == (9000, 20.0, "debug")
    toml = tmp_path / "c.toml"
    toml.write_text('llm_provider = "openai"\nllm_model = "m"\n')
    assert load_settings(toml, environ={}).llm_provider == "openai"


@pytest.mark.parametrize(
    ("environ", "file_text", "names"),
    [
        ({"INFRAGENT_PROT": "1"}, None, "INFRAGENT_PROT: unknown setting"),
        ({"INFRAGENT_PORT": "eighty"}, None, "INFRAGENT_PORT"),
        ({"INFRAGENT_LLM_PROVIDER": "claude"}, None, "INFRAGENT_LLM_PROVIDER"),
        ({"INFRAGENT_DATABASE_URL": "mysql://x"}, None, "INFRAGENT_DATABASE_URL"),
        ({}, "cooldwn_s: 3\n", "cooldwn_s: unknown setting"),
        ({}, "lease_s: -1\n", "lease_s"),
        ({}, "- a\n- b\n", "top level must be a mapping"),
        ({}, "port: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, names: str
) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(file_text)
    with pytest.raises(ConfigError, match=names):
        load_settings(path, environ=environ)


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_mappings_come_from_the_environment_as_json() -> None:
    s = load_settings(environ={"INFRAGENT_REMOTE_WRITE_HEADERS": '{"Authorization": "Bearer x"}'})
    assert s.remote_write_headers == {"Authorization": "Bearer x"}
    with pytest.raises(ConfigError, match="INFRAGENT_REMOTE_WRITE_HEADERS: must be a JSON object"):
        load_settings(environ={"INFRAGENT_REMOTE_WRITE_HEADERS": "Authorization: Bearer x"})


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"INFRAGENT_REMOTE_WRITE_HEADERS": '["Bearer sk-very-secret"]'})
    assert "sk-very-secret" not in str(info.value)


def test_the_agents_variables_do_not_stop_the_server() -> None:
    env = {
        "INFRAGENT_SERVER_URL": "http://127.0.0.1:8470",
        "INFRAGENT_API_KEY": "ia_x",
        "INFRAGENT_PORT": "9",
    }
    assert load_settings(environ=env).port == 9


@pytest.mark.parametrize(
    ("environ", "file_text", "expected"),
    [
        ({}, None, ()),
        ({"INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}, None, ("127.0.0.0/8",)),
        ({"INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8, fd12::/16"}, None, ("10.0.0.0/8", "fd12::/16")),
        ({"INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": '["10.1.2.3"]'}, None, ("10.1.2.3/32",)),
        ({}, "webhook_allowed_networks: [127.0.0.0/8, '::1/128']\n", ("127.0.0.0/8", "::1/128")),
    ],
)
def test_webhook_allowed_networks(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, expected: tuple[str, ...]
) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "c.yaml"
        path.write_text(file_text)
    assert load_settings(path, environ=environ).webhook_allowed_networks == expected


@pytest.mark.parametrize("value", ["10.0.0.1/8", "localhost", "10.0.0.0/33"])
def test_a_bad_allowed_network_names_the_setting_and_the_entry(value: str) -> None:
    with pytest.raises(ConfigError, match=f"INFRAGENT_WEBHOOK_ALLOWED_NETWORKS: .*{value}"):
        load_settings(environ={"INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": f"127.0.0.0/8,{value}"})
