"""The shipper's status → verdict table: the shared policy plus what the agent's data needs."""

from __future__ import annotations

import pytest

from infragent.agent.shipper import Verdict, classify


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "ack"),
        (201, "ack"),
        (202, "ack"),
        (204, "ack"),
        (409, "ack"),  # duplicate batch_id: the server already has it
        (408, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (599, "retry"),
        (501, "retry"),  # final for the shared policy, but not the batch's fault: keep it
        (505, "retry"),
        (400, "set_aside"),
        (401, "set_aside"),
        (403, "set_aside"),
        (404, "set_aside"),
        (413, "set_aside"),
        (422, "set_aside"),
        (451, "set_aside"),
        (302, "retry"),  # unexpected: never a reason to throw data away
        (100, "retry"),
        (0, "retry"),
    ],
)
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) == verdict
