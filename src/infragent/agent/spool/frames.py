"""The spool's record frame: encode, validate, and find frames in a segment's bytes.

Pure: bytes in, frames out; no files, no clock, nothing else of the spool is imported, so the codec
can be fuzzed alone. A segment is a run of frames, little-endian::

    offset  size  field
       0      4   magic b"\\xa5IAS"
       4      1   format version (1)
       5      1   flags (0, reserved)
       6      2   batch_id length in bytes (u16)
       8      8   seq: sequence number, strictly increasing over the spool's life (u64)
      16      8   points in the batch (u64)
      24      4   payload length (u32)
      28      4   CRC-32 (zlib.crc32) of bytes 0..27, then batch_id, then payload
      32      n   batch_id (UTF-8)
    32+n      m   payload (opaque, already encoded batch)

Why "incomplete" is told apart from "invalid": a frame cut short at the end of the newest segment is
the torn tail of a write killed midway (never acknowledged to the caller, safe to truncate), while
bad bytes anywhere else are damage to set aside and count.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

MAGIC: Final = b"\xa5IAS"
FORMAT_VERSION: Final = 1
_HEAD = struct.Struct("<4sBBHQQI")  # the 28 bytes the CRC starts with
_CRC = struct.Struct("<I")
HEADER_SIZE: Final = _HEAD.size + _CRC.size

Bad = Literal["incomplete", "invalid"]


class Frame(NamedTuple):
    """A frame that validated; ``payload_start`` is relative to the frame's first byte."""

    seq: int
    points: int
    size: int
    batch_id: str
    payload_start: int


@dataclass(slots=True)
class Scan:
    """What ``scan`` found in a segment."""

    frames: list[tuple[int, Frame]]  # (offset, frame)
    bad: list[tuple[int, int]]  # damaged regions [start, end)
    torn_at: int | None  # offset of a cut-short final frame


def encode_frame(seq: int, batch_id: bytes, points: int, payload: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, len(batch_id), seq, points, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(batch_id, zlib.crc32(head)))
    return b"".join((head, _CRC.pack(crc), batch_id, payload))


def parse_frame(buf: bytes, off: int) -> Frame | Bad:
    """Validate the frame starting at ``off``; "incomplete" means it could be a cut-short write."""
    available = len(buf) - off
    if available < HEADER_SIZE:
        prefix = buf[off : off + len(MAGIC)]
        torn = MAGIC.startswith(prefix) and (available <= len(MAGIC) or buf[off + 4] == FORMAT_VERSION)
        return "incomplete" if torn else "invalid"
    magic, version, _flags, id_len, seq, points, payload_len = _HEAD.unpack_from(buf, off)
    if magic != MAGIC or version != FORMAT_VERSION:
        return "invalid"
    size = HEADER_SIZE + id_len + payload_len
    if size > available:
        return "incomplete"
    (crc,) = _CRC.unpack_from(buf, off + _HEAD.size)
    id_start = off + HEADER_SIZE
    payload_start = id_start + id_len
    body = memoryview(buf)
    actual = zlib.crc32(body[off : off + _HEAD.size])
    actual = zlib.crc32(body[id_start : off + size], actual)
    if actual != crc:
        return "invalid"
    try:
        batch_id = bytes(body[id_start:payload_start]).decode()
    except UnicodeDecodeError:
        return "invalid"
    return Frame(seq, points, size, batch_id, payload_start - off)


def scan(buf: bytes, *, newest: bool) -> Scan:
    """Every intact frame of a segment, the damaged regions between them, and a torn tail (only
    reported for the ``newest`` segment, the one a killed write could have cut short)."""
    frames: list[tuple[int, Frame]] = []
    bad: list[tuple[int, int]] = []
    off = 0
    while off < len(buf):
        got = parse_frame(buf, off)
        if isinstance(got, Frame):
            frames.append((off, got))
            off += got.size
            continue
        resume = resync(buf, off + 1)
        if resume is None:
            if got == "incomplete" and newest:
                return Scan(frames, bad, torn_at=off)
            bad.append((off, len(buf)))
            break
        bad.append((off, resume))
        off = resume
    return Scan(frames, bad, torn_at=None)


def resync(buf: bytes, start: int) -> int | None:
    """Offset of the next frame whose CRC checks; a magic inside a payload does not count."""
    pos = buf.find(MAGIC, start)
    while pos != -1:
        if isinstance(parse_frame(buf, pos), Frame):
            return pos
        pos = buf.find(MAGIC, pos + 1)
    return None
