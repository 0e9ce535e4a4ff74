"""The ingest limits are settings (``max_decompressed_bytes``), checked at start-up like every other."""

from __future__ import annotations

import pytest

from infragent.config import load_settings
from infragent.errors import ConfigError


def test_max_decompressed_bytes_defaults_to_32_mib_and_is_read_from_the_environment() -> None:
    assert load_settings(environ={}).max_decompressed_bytes == 32 * 1024 * 1024
    got = load_settings(environ={"INFRAGENT_MAX_DECOMPRESSED_BYTES": "2097152"})
    assert got.max_decompressed_bytes == 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"INFRAGENT_MAX_DECOMPRESSED_BYTES": "0"}, "greater than 0"),
        ({"INFRAGENT_MAX_DECOMPRESSED_BYTES": "lots"}, "valid integer"),
        (
            {"INFRAGENT_MAX_BODY_BYTES": "4096", "INFRAGENT_MAX_DECOMPRESSED_BYTES": "1024"},
            r"must be at least max_body_bytes \(4096\)",
        ),
    ],
)
def test_a_bad_max_decompressed_bytes_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"INFRAGENT_MAX_DECOMPRESSED_BYTES: .*{message}"):
        load_settings(environ=environ)
