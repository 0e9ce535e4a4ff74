from __future__ import annotations

import stat
from pathlib import Path

import pytest

from infragent.agent.install import InstallPlan, install, render_env, render_unit, uninstall
from infragent.auth.apikeys import generate
from infragent.errors import ConfigError

KEY = generate().plaintext


def _plan(tmp_path: Path, **kw: object) -> InstallPlan:
    args: dict[str, object] = {
        "server_url": "https://infragent.example.com",
        "api_key": KEY,
        "config_dir": tmp_path / "etc",
        "unit_dir": tmp_path / "units",
    }
    args.update(kw)
    return InstallPlan(**args)  # type: ignore[arg-type]


def test_unit_has_restart_policy_and_limits(tmp_path: Path) -> None:
    unit = render_unit(_plan(tmp_path))
    for line in (
        "Restart=always",
        "MemoryMax=64M",
        "CPUQuota=10%",
        "-m infragent.agent run",
        f"EnvironmentFile={tmp_path / 'etc' / 'agent.env'}",
        "WantedBy=multi-user.target",
    ):
        assert line in unit
    assert KEY not in unit  # the key lives only in the 0600 environment file


def test_install_writes_private_env_file_and_explains_without_systemd(tmp_path: Path) -> None:
    plan = _plan(tmp_path, node_id="web-1", extra_env={"METRICS_INTERVAL": "5"})
    done = install(plan, run_dir=tmp_path / "no-systemd")
    mode = stat.S_IMODE(plan.env_path.stat().st_mode)
    assert mode == 0o600
    env = plan.env_path.read_text()
    assert f"INFRAGENT_API_KEY={KEY}" in env and "NODE_ID=web-1" in env and "METRICS_INTERVAL=5" in env
    assert plan.unit_path.read_text() == render_unit(plan)
    assert any("systemd is not running here" in d for d in done)
    assert uninstall(plan.config_dir, plan.unit_dir, run_dir=tmp_path / "no-systemd") == [
        f"removed {plan.unit_path}",
        f"removed {plan.env_path}",
    ]
    assert not plan.unit_path.exists() and not plan.env_path.exists()


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"server_url": "infragent.example.com"}, "--server"),
        ({"api_key": "secret"}, "--key"),
        ({"command_mode": "carrier-pigeon"}, "--mode"),
        ({"webhook_secret": "hunter2"}, "--webhook-secret"),
        ({"extra_env": {"A": "x\nINFRAGENT_API_KEY=evil"}}, "A"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, kw: dict[str, object], key: str
) -> None:
    plan = _plan(tmp_path, **kw)
    with pytest.raises(ConfigError, match=key):
        install(plan, run_dir=tmp_path / "no-systemd")
    assert not (tmp_path / "etc").exists() and not (tmp_path / "units").exists()


def test_env_file_content() -> None:
    env = render_env(InstallPlan(server_url="http://10.0.0.5:8470", api_key=KEY, webhook_secret="whsec_abc"))
    assert env.splitlines()[1:] == [
        "INFRAGENT_SERVER_URL=http://10.0.0.5:8470",
        f"INFRAGENT_API_KEY={KEY}",
        "COMMAND_MODE=pull",
        "INFRAGENT_WEBHOOK_SECRET=whsec_abc",
    ]
