from __future__ import annotations

import pytest

from infragent import signing
from infragent.errors import SignatureError

BODY = b'{"action":"restart"}'
NOW = 1_800_000_000.0


def _headers(secret: str, msg_id: str = "cmd-1", now: float = NOW, body: bytes = BODY) -> dict[str, str]:
    return signing.signed_headers(secret, msg_id, body, now=now)


def test_round_trip_and_known_vector() -> None:
    # Vector from the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    s = signing.new_secret()
    assert signing.verify(s, _headers(s), BODY, now=NOW).msg_id == "cmd-1"


@pytest.mark.parametrize(
    ("mutate", "reason", "code"),
    [
        (lambda h, b: (h, b[:-1] + b"X"), "no webhook-signature matches", "bad_signature"),
        (lambda h, b: ({**h, "webhook-timestamp": str(int(NOW) - 301)}, b), "away from now", "stale"),
        (lambda h, b: ({**h, "webhook-timestamp": str(int(NOW) + 301)}, b), "away from now", "stale"),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
            "missing",
            "missing_headers",
        ),
        (lambda h, b: ({**h, "webhook-id": "other"}, b), "no webhook-signature matches", "bad_signature"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "not an integer", "bad_timestamp"),
    ],
)
def test_refusals(mutate: object, reason: str, code: str) -> None:
    secret = signing.new_secret()
    headers, body = mutate(_headers(secret), BODY)  # type: ignore[operator]
    with pytest.raises(SignatureError, match=reason) as info:
        signing.verify(secret, headers, body, now=NOW)
    assert info.value.code == code


def test_a_secret_that_is_not_base64_is_bad_secret() -> None:
    with pytest.raises(SignatureError) as info:
        signing.sign("whsec_not base64!", "cmd-1", int(NOW), BODY)
    assert info.value.code == "bad_secret"


def test_wrong_secret_and_rotation() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    with pytest.raises(SignatureError):
        signing.verify(new, _headers(old), BODY, now=NOW)
    assert signing.verify([new, old], _headers(old), BODY, now=NOW)


def test_replay_refused_but_forgery_does_not_poison_cache() -> None:
    secret = signing.new_secret()
    seen = signing.MemorySeenIds()
    forged = {**_headers(secret), "webhook-signature": "v1,AAAA"}
    with pytest.raises(SignatureError):
        signing.verify(secret, forged, BODY, now=NOW, seen=seen)
    signing.verify(secret, _headers(secret), BODY, now=NOW, seen=seen)
    with pytest.raises(SignatureError, match="replay") as info:
        signing.verify(secret, _headers(secret, now=NOW + 5), BODY, now=NOW + 5, seen=seen)
    assert info.value.code == "replay"


def test_seen_ids_expire_after_keep_window() -> None:
    seen = signing.MemorySeenIds(keep_s=600)
    assert seen.add_if_new("a", 0.0)
    assert not seen.add_if_new("a", 599.0)
    assert seen.add_if_new("b", 700.0)
    assert seen.add_if_new("a", 700.0)  # forgotten after the window; the timestamp check refuses it anyway
