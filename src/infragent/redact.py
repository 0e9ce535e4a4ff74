"""One redactor for every place host-reported text leaves our hands: the LLM prompt, its audit copy, logs.

Why one: the prompt sent to a vendor and the copy kept in the audit log must hide the same things,
or one of them leaks what the other hides (until issue 10 the prompt went out unredacted and only the
audit copy was masked). Pure: no I/O, no state; the same input always gives the same output, and
redacting twice changes nothing more (``redact(redact(x)) == redact(x)``).

What is masked, in text and inside JSON-like values:

- our own credentials: API keys ``ia_<key_id>_<secret>`` (the key id stays: it names the key, it
  does not open anything) and webhook secrets ``whsec_…``;
- ``Bearer``/``Basic`` credentials, passwords in URLs (``scheme://user:[REDACTED]@host``), URL
  query parameters that carry signatures or tokens (``sig=``, ``token=``, ``X-Amz-Signature=``);
- PEM private-key blocks (also a block cut short by an output cap), JWTs;
- cloud and SaaS keys whose shape is published: AWS access key ids (``AKIA…``/``ASIA…``) and
  40-character secret keys, GCP API keys (``AIza…``) and OAuth tokens (``ya29.…``), Azure storage
  ``AccountKey=``/``SharedAccessSignature``, GitHub (``ghp_…``), Slack (``xox?-…``), Stripe-like
  (``sk_live_…``) and OpenAI-style (``sk-…``) keys;
- the value of any key named like a credential (``password``, ``passwd``, ``pwd``, ``secret``,
  ``token``, ``key``, ``credential``, ``authorization``, ``cookie``, ``passphrase`` …), whether as a
  JSON/dict key (the whole value, nested or not) or in ``key=value`` / ``key: value`` /
  ``--key value`` text.

Why err towards masking: a masked cache key costs a little context; a leaked password costs the
owner their database. The mask is ``[REDACTED]`` so readers (and the LLM) see that something was there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

MASK = "[REDACTED]"

# Words that make a key name sensitive wherever they appear in it ("dbpassword", "client_secret").
_SENSITIVE_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "authorization",
    "cookie",
    "signature",
)
# Short words that make a key name sensitive only as a whole part of it ("api_key", not "monkey").
_SENSITIVE_PARTS = frozenset({"key", "keys", "pwd", "pass", "auth", "sig", "dsn"})
_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_sensitive_key(name: str) -> bool:
    """True when a key named ``name`` is likely to hold a credential (its value is masked whole)."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(word in flat for word in _SENSITIVE_WORDS) or flat.endswith(
        ("pass", "pwd", "auth")
    ):  # requirepass, masterauth
        return True
    return any(part.lower() in _SENSITIVE_PARTS for part in _PARTS.findall(name))


def _keep_group(group: int) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(group) + MASK


def _mask(_m: re.Match[str]) -> str:
    return MASK


# Value patterns: (pattern, replacement). A replacement keeps the non-secret prefix it names.
_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    # PEM private keys, whole or cut short by an output cap (then up to the end of the base64 run).
    (
        re.compile(
            r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(?!\[REDACTED\])"
            r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
            re.DOTALL,
        ),
        _keep_group(1),
    ),
    (re.compile(r"\b(ia_[A-Za-z0-9]{12}_)[A-Za-z0-9_-]{8,}"), _keep_group(1)),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]{8,}"), _keep_group(1)),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), _mask),
    # Bearer/Basic credentials: an upper-case letter or a digit tells them from prose ("bearer tokens").
    (
        re.compile(r"\b((?i:bearer|basic)\s+)(?=\S*[A-Z0-9+/=])[A-Za-z0-9._~+/=-]{6,}"),
        _keep_group(1),
    ),
    # scheme://user:password@host: the password stops at what cannot be in it unescaped.
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@\"']*:)(?!\[REDACTED\])[^\s@/?#\"']+(?=@)"),
        _keep_group(1),
    ),
    (
        re.compile(
            r"(?i)([?&](?:sig|signature|x-amz-signature|x-goog-signature|x-amz-security-token"
            r"|access_token|token|api_key|apikey|key|password)=)[^&\s\"'#]+"
        ),
        _keep_group(1),
    ),
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"), _mask),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), _mask),
    (re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), _mask),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), _mask),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"), _mask),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), _mask),
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), _mask),
    (re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), _mask),
    (re.compile(r"(?i)\b(SharedAccessSignature=|AccountKey=)(?!\[REDACTED\])[^;\s\"']+"), _keep_group(1)),
)

# A 40-character base64 run (an AWS secret access key's shape) with upper, lower and digit: hashes
# in hex (git, SHA-1) have no upper case, words have no digits, so those stay readable.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")

# key=value, key: value, "key": "value", --key value. Only the key and separator are consumed and
# the value is looked ahead at, so a key that is not sensitive leaves its value to be scanned in
# turn ("login: client_secret=…"). The key is judged by ``is_sensitive_key``.
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\\\"(?:[^\"\\]|\\[^\"])*\\\""
_UNQUOTED = r"(?:[^\s\"',;&}\])\\]|\\(?![nrt\"\\]))+"
_VALUE = r"(?=(?P<scheme>(?i:bearer|basic)\s+)?(?P<value>\[REDACTED\]|" + _QUOTED + "|" + _UNQUOTED + "))"
_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>\\?[\"']?[ \t]*(?:=|:(?!//))[ \t]*)"
    + _VALUE
)
_FLAG = re.compile(r"(?<![A-Za-z0-9_-])(?P<key>--?[A-Za-z][A-Za-z0-9_-]*)(?P<sep>[ \t]+|=)(?!-)" + _VALUE)


def _mask_value(value: str) -> str:
    """Mask a value, keeping its quotes so the text around it stays well formed."""
    for quote in ('\\"', '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return quote + MASK + quote
    return MASK


def _mask_assignments(text: str, pattern: re.Pattern[str]) -> str:
    out: list[str] = []
    cursor = 0
    for m in pattern.finditer(text):
        if m.start() < cursor or not is_sensitive_key(m.group("key").lstrip("-")):
            continue
        value = m.group("value")
        if MASK in value:
            continue
        scheme = m.group("scheme") or ""
        out.append(text[cursor : m.end()] + scheme + _mask_value(value))
        cursor = m.end() + len(scheme) + len(value)
    out.append(text[cursor:])
    return "".join(out)


def _mask_aws_secret(m: re.Match[str]) -> str:
    s = m.group(0)
    if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
        return MASK
    return s


def redact(text: str) -> str:
    """Mask every credential found in ``text`` (see the module docstring for what counts as one)."""
    for pattern, replace in _VALUE_PATTERNS:
        text = pattern.sub(replace, text)
    text = _AWS_SECRET.sub(_mask_aws_secret, text)
    text = _mask_assignments(text, _ASSIGNMENT)
    return _mask_assignments(text, _FLAG)


def _redact_item(key: str, value: Any) -> Any:
    if value is not None and is_sensitive_key(key):
        return MASK
    return redact_value(value)


def redact_value(value: Any) -> Any:
    """Redact a JSON-like value: strings as text; a sensitive key's value whole; keys themselves as text.

    Why walk the structure and not only its JSON text: a nested value under ``"password"`` (a dict,
    a list, a number) has no single token for a text pattern to catch.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            redact(str(k)): MASK
            if is_sensitive_key(str(k)) and value[k] is not None
            else redact_value(value[k])
            for k in value
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
