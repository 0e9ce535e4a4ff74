"""The apprise channel: the long tail of services (ntfy, Gotify, Matrix, Telegram, Pushover, …)
through the ``apprise`` library, behind our own outbox.

Why apprise only sends: it neither persists nor retries (and it is asked not to keep anything on
disk: memory storage). Our outbox does both: a send that apprise reports as failed is a ``retry``
with the shared backoff, until the delivery's deadline.

Secrets: the channel's ``urls`` (a list, or one string) are secret, since they embed tokens and
passwords. No error names a URL: a URL is "#2 (scheme 'ntfy')". apprise logs its own failures;
its logger is set to WARNING (its debug lines print whole requests) and a filter removes the URLs
of a send in progress (and their tokens, passwords, paths) from whatever it still logs.

The outbound policy (``apprise_url_problem``), applied when a channel is saved and again at each
send. A scheme whose service lives where the URL says (apprise's own templates name a ``{host}``:
json, xml, form, mailto with an SMTP host, ntfy with a host, gotify, matrix, mqtt, rocket, apprise,
mastodon, nextcloud, …) must resolve to addresses the policy allows, exactly as a webhook URL.
Vendor schemes with fixed public endpoints (discord, tgram, slack, pover, …) need no check: their
"host" is a token. Schemes that act on the server machine itself (desktop notifications, the local
syslog) are refused.

The limit, documented in ``docs/notifications.md``: apprise opens its own connections, so the check
is made on a resolution of ours just before apprise resolves the name again; a DNS answer that
changes in between (rebinding) is not re-checked, and a redirect followed by apprise's HTTP client
is not judged. Only the host named by the URL (and mailto's ``smtp=``) is checked; other query
parameters that name a server are not. For a URL the policy must hold against an adversary, use a
webhook channel, whose every connection goes through the guarded transport.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from infragent.notify.channels.base import ChannelDeps
from infragent.notify.model import ChannelConfig, DeliveryResult, Message, NotificationKind
from infragent.notify.render import render
from infragent.outbound.policy import Address, OutboundPolicy, Resolver

if TYPE_CHECKING:
    import apprise

logger = logging.getLogger(__name__)

#: Services that run on the server machine itself: never a tenant's destination.
LOCAL_SCHEMES = frozenset(
    {"windows", "macosx", "dbus", "qt", "kde", "glib", "gio", "gnome", "syslog", "blink1"}
)
_LOCAL = "scheme {scheme!r} notifies the server machine itself; not allowed"
#: Schemes whose host the user controls even if apprise's templates stop saying so.
HOST_SCHEMES = frozenset(
    {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos", "ntfy", "ntfys", "gotify",
     "gotifys", "matrix", "matrixs", "mqtt", "mqtts", "rocket", "rockets", "apprise", "apprises"}
)  # fmt: skip
#: apprise's notification type for each of ours (the colour or icon some services show).
NOTIFY_TYPES: dict[NotificationKind, str] = {
    "firing": "failure",
    "resolved": "success",
    "escalated": "warning",
    "acknowledged": "info",
    "escalation": "warning",
    "approval": "warning",
    "test": "info",
}


class _Scrubber(logging.Filter):
    """Removes the secrets of sends in progress from the records of the ``apprise`` logger."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: Counter[str] = Counter()

    @contextmanager
    def hiding(self, secrets: set[str]) -> Iterator[None]:
        with self._lock:
            self._secrets.update(secrets)
        try:
            yield
        finally:
            with self._lock:
                self._secrets.subtract(secrets)
                self._secrets = +self._secrets  # drop the ones no send holds any more

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        if secrets:
            text = record.getMessage()
            for secret in secrets:
                text = text.replace(secret, "[REDACTED]")
            record.msg, record.args = text, None
        return True


_SCRUBBER = _Scrubber()
logging.getLogger("apprise").setLevel(logging.WARNING)
# a filter acts on the records of its own logger only: apprise's, and those of urllib3 (under
# apprise's HTTP client) whose debug lines print request paths, where tokens live
for _name in ("apprise", "urllib3.connectionpool", "urllib3.connection"):
    logging.getLogger(_name).addFilter(_SCRUBBER)


def secret_parts(url: str) -> set[str]:
    """What of ``url`` may not be logged: itself, its password, user info, path, query and tokens."""
    parts = {url}
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    netloc_user = split.netloc.rpartition("@")[0]
    pieces = [netloc_user, split.password or "", split.path, split.query]
    pieces += [p for p in split.path.split("/") if len(p) >= 6]
    if split.scheme.lower() not in HOST_SCHEMES and split.hostname:
        pieces.append(split.hostname)  # a vendor's "host" is a token (tgram://<bot token>/…)
    for piece in pieces:
        if len(piece) >= 4:
            parts.update({piece, unquote(piece)})
    return parts


def urls_of(config: ChannelConfig) -> list[str] | str:
    """The channel's URLs, or what is wrong with them."""
    raw = config.secrets.get("urls")
    urls = [raw] if isinstance(raw, str) else raw
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        return "secret 'urls' must be a list of apprise URLs"
    cleaned = [u.strip() for u in urls if u.strip()]
    return cleaned or "secret 'urls' holds no apprise URL"


def _scheme(url: str) -> str:
    scheme, sep, _rest = url.partition("://")
    return scheme.lower() if sep and scheme.isascii() and scheme.replace("+", "").isalnum() else "?"


def _asset() -> apprise.AppriseAsset:
    import apprise  # lazily: apprise and its plugins weigh ~40 MB and seconds of import

    return apprise.AppriseAsset(storage_mode="memory")


def apprise_url_problem(url: str, policy: OutboundPolicy, resolve: Resolver) -> str | None:
    """Why ``url`` may not be used (the module docstring's rules), or None. Never names the URL."""
    import apprise

    scheme = _scheme(url)
    if scheme in LOCAL_SCHEMES:
        return _LOCAL.format(scheme=scheme)
    with _SCRUBBER.hiding(secret_parts(url)):  # apprise logs the URLs it loads
        plugin = apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=True)
        if plugin is None:
            return f"apprise cannot read it (scheme {scheme!r})"
        return _plugin_problem(scheme, plugin, policy, resolve)


def _plugin_problem(scheme: str, plugin: Any, policy: OutboundPolicy, resolve: Resolver) -> str | None:
    templates = getattr(type(plugin), "templates", ()) or ()
    if scheme not in HOST_SCHEMES and not any("{host}" in str(t) for t in templates):
        return None  # a vendor with a fixed endpoint
    port = getattr(plugin, "port", None)
    hosts = [getattr(plugin, "host", None), getattr(plugin, "smtp_host", None)]
    for host in dict.fromkeys(h for h in hosts if isinstance(h, str) and h):
        problem = _host_problem(host, port if isinstance(port, int) else 443, policy, resolve)
        if problem:
            return problem
    return None


def _host_problem(host: str, port: int, policy: OutboundPolicy, resolve: Resolver) -> str | None:
    addresses: Sequence[Address | str]
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            return f"host {host!r} does not resolve ({exc})"
        if not addresses:
            return f"host {host!r} does not resolve"
    verdict = policy.choose(addresses)
    return None if verdict.allowed else f"host {host!r}: {verdict.reason}"


class AppriseChannel:
    """Sends the rendered title and text to each apprise URL of the channel, in order."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._config = config
        self._deps = deps
        self._urls = urls_of(config)

    def send(self, message: Message) -> DeliveryResult:
        urls = self._urls
        if isinstance(urls, str):
            return DeliveryResult("failed", error=f"apprise channel: {urls}")
        if not message.text:
            message = render(message, "apprise", self._deps.clock())
        secrets = set().union(*(secret_parts(u) for u in urls))
        with _SCRUBBER.hiding(secrets):
            for number, url in enumerate(urls, start=1):
                result = self._send_one(number, url, message)
                if result is not None:
                    return result
        return DeliveryResult("delivered")

    def _send_one(self, number: int, url: str, message: Message) -> DeliveryResult | None:
        """None when apprise sent it; else the result (failed for a refused URL, retry otherwise)."""
        import apprise

        scheme = _scheme(url)
        name = f"apprise URL #{number} (scheme {scheme!r})"
        if scheme in LOCAL_SCHEMES:
            return DeliveryResult("failed", error=f"{name} refused: {_LOCAL.format(scheme=scheme)}")
        sender = apprise.Apprise(asset=_asset())
        if not sender.add(url) or len(sender) != 1:
            return DeliveryResult("failed", error=f"apprise cannot read URL #{number} (scheme {scheme!r})")
        plugin = sender[0]
        problem = _plugin_problem(scheme, plugin, self._deps.policy, self._deps.resolve)
        if problem:
            logger.warning("%s not sent: %s", name, problem)
            return DeliveryResult("failed", error=f"{name} refused: {problem}")
        _set_timeouts(plugin, self._deps.timeout_s)
        try:
            sent = sender.notify(
                body=message.text or message.title,
                title=message.title,
                notify_type=apprise.NotifyType(NOTIFY_TYPES.get(message.kind, "info")),
                body_format=apprise.NotifyFormat.TEXT,
            )
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed attempt, not a crash
            logger.warning("%s: apprise raised %s", name, type(exc).__name__)
            return DeliveryResult("retry", error=f"{name}: apprise raised {type(exc).__name__}")
        if not sent:
            error = (
                f"{name} was not delivered; apprise reports no status code or reason "
                "(its warning, with secrets removed, is in the server log)"
            )
            return DeliveryResult("retry", error=error)
        return None


def _set_timeouts(plugin: Any, timeout_s: float) -> None:
    """Our ``notify_timeout_s`` instead of apprise's defaults (4 s connect, 4 s read)."""
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        if hasattr(plugin, name):
            setattr(plugin, name, timeout_s)
