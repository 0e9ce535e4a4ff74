"""The frame codec alone (``agent/spool/frames.py``): round trips, and fuzzed bytes never raise."""

from __future__ import annotations

import random

import pytest

from infragent.agent.spool.frames import HEADER_SIZE, MAGIC, Frame, encode_frame, parse_frame, scan


def _frames(rng: random.Random, count: int) -> list[tuple[int, bytes, int, bytes]]:
    return [
        (seq, f"b-{seq}".encode(), rng.randrange(2**64), rng.randbytes(rng.randrange(0, 300)))
        for seq in range(1, count + 1)
    ]


def test_round_trip() -> None:
    rng = random.Random(1)
    for seq, batch_id, points, payload in _frames(rng, 50):
        buf = encode_frame(seq, batch_id, points, payload)
        got = parse_frame(buf, 0)
        assert isinstance(got, Frame)
        assert (got.seq, got.points, got.size, got.batch_id) == (seq, points, len(buf), batch_id.decode())
        assert buf[got.payload_start : got.size] == payload


def test_every_cut_of_a_frame_is_incomplete_and_a_flipped_bit_invalid() -> None:
    buf = encode_frame(7, b"batch", 3, b"payload" * 5)
    assert all(parse_frame(buf[:cut], 0) == "incomplete" for cut in range(1, len(buf)))
    for i in range(len(buf)):
        damaged = bytearray(buf)
        damaged[i] ^= 0x10
        assert parse_frame(bytes(damaged), 0) in ("invalid", "incomplete")  # a length may grow


@pytest.mark.parametrize("seed", range(20))
def test_fuzzed_segments_never_raise_and_keep_every_intact_frame(seed: int) -> None:
    rng = random.Random(seed)
    frames = [encode_frame(*f) for f in _frames(rng, 8)]
    parts: list[bytes] = []
    for frame in frames:
        parts.append(frame)
        if rng.random() < 0.4:  # garbage between frames, sometimes a false magic in it
            parts.append(rng.randbytes(rng.randrange(1, 40)) + (MAGIC if rng.random() < 0.5 else b""))
    found = scan(b"".join(parts), newest=rng.random() < 0.5)
    assert [f.seq for _, f in found.frames] == list(range(1, 9))
    noise = rng.randbytes(rng.randrange(0, 2 * HEADER_SIZE))
    scan(noise, newest=True)
    scan(MAGIC + noise, newest=False)
