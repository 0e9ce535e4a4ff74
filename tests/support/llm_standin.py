"""A local stand-in for the LLM vendors: a real HTTP server on loopback speaking both wire formats.

Why a real server rather than a mocked transport: the adapters' whole job is the wire — URL,
headers, envelope, status codes, timeouts — so tests must cross a socket to mean anything. Why a
script of answers: responder tests need exact, ordered, adversarial replies (malformed JSON, an
action outside the allowlist, an answer that obeys an injected instruction, a 503, a stall), which
no real model gives on demand.

Routes (the vendors' own): ``POST /v1beta/models/{model}:generateContent`` (Gemini) and
``POST /v1/chat/completions`` (OpenAI-compatible). Each request is recorded, then checked for auth
(the vendor's error for a missing or wrong key) and shape (400 in the vendor's error shape), then
answered with the next scripted item — or, when the script is empty, by ``rules(system, user)``
if given, else a loud 500 so a test that over-consumes fails.

    with LlmStandIn(api_key="k") as llm:
        llm.script(Answer('{"action": "restart"}'), Delay(5.0), Status(503))
        client = GeminiClient(base_url=llm.gemini_base_url, model="m", api_key="k", timeout_s=1)
        ...
        assert llm.requests[0].user == "..."

Uses stdlib ``ThreadingHTTPServer``: one thread per connection and every response is sent with
``Connection: close``, so shutdown never waits on an idle keep-alive connection; scripted delays
and drips wait on an event that shutdown sets, so a stalled handler ends at once.
"""

from __future__ import annotations

import http
import re
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import orjson

Finish = Literal["stop", "length", "safety"]
Vendor = Literal["gemini", "openai"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer text, put in the vendor's envelope.

    ``finish`` maps to Gemini ``STOP``/``MAX_TOKENS``/``SAFETY`` and OpenAI
    ``stop``/``length``/``content_filter``.
    """

    text: str
    finish: Finish = "stop"


@dataclass(frozen=True, slots=True)
class Status:
    """An HTTP error in the vendor's error shape (``message`` defaults to the status phrase)."""

    code: int
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Blocked:
    """Gemini: ``promptFeedback.blockReason`` and no candidates. OpenAI: a ``refusal``, null content."""

    reason: str = "SAFETY"
    refusal: str = "I'm sorry, but I can't assist with that request."


@dataclass(frozen=True, slots=True)
class Raw:
    """Exactly this body, whatever the vendor — for envelopes of the wrong shape."""

    body: bytes | str | Mapping[str, Any] | list[Any]
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait ``seconds`` (or until the stand-in closes), then answer with ``then``."""

    seconds: float
    then: Answer | Status | Blocked | Raw = Answer("{}")


@dataclass(frozen=True, slots=True)
class Drip:
    """Send the whole HTTP response of ``then`` — status line and headers included — ``chunk``
    bytes every ``interval_s`` seconds: each read is quick, the whole is slow."""

    then: Answer | Status | Blocked | Raw
    interval_s: float
    chunk: int = 1


Item = Answer | Status | Blocked | Raw | Delay | Drip
Rules = Callable[[str, str], str | Item]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received; ``body`` is the parsed JSON or None when it was not JSON."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any
    raw: bytes
    vendor: Vendor | None
    model: str | None

    @property
    def system(self) -> str:
        return _system_text(self.vendor, self.body)

    @property
    def user(self) -> str:
        return _user_text(self.vendor, self.body)


_GEMINI_PATH = re.compile(r"/v1beta/models/(?P<model>[^/:]+):generateContent")
_OPENAI_PATH = "/v1/chat/completions"
_GEMINI_TOP_LEVEL = frozenset(
    {
        "contents",
        "systemInstruction",
        "system_instruction",
        "generationConfig",
        "generation_config",
        "safetySettings",
        "safety_settings",
        "tools",
        "toolConfig",
        "tool_config",
        "cachedContent",
        "cached_content",
        "labels",
    }
)
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "safety": "SAFETY"}
_OPENAI_FINISH = {"stop": "stop", "length": "length", "safety": "content_filter"}
_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LlmStandIn:
    """The stand-in server; use as a context manager (or ``start()``/``close()``).

    ``api_key=None`` accepts any or no credentials, like a local Ollama.
    """

    def __init__(self, api_key: str | None = "test-key", rules: Rules | None = None) -> None:
        self.api_key = api_key
        self.rules = rules
        self._lock = threading.Lock()
        self._script: deque[Item] = deque()
        self._requests: list[RecordedRequest] = []
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LlmStandIn:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="llm-standin", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def close(self) -> None:
        """Stop serving; stalled handlers wake at once, then every handler thread is joined."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self._server = self._thread = None

    def __enter__(self) -> LlmStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- test API --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the LLM stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def gemini_base_url(self) -> str:
        return f"{self.base_url}/v1beta"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def script(self, *items: Item | str) -> None:
        """Queue answers, consumed one per valid request; a bare string means ``Answer(text)``."""
        with self._lock:
            self._script.extend(Answer(item) if isinstance(item, str) else item for item in items)

    @property
    def remaining(self) -> int:
        """Scripted items not yet consumed."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, including rejected ones, in arrival order."""
        with self._lock:
            return list(self._requests)

    # -- used by the handler ---------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            return len(self._requests)

    def _next_item(self, request: RecordedRequest, number: int) -> Item:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.rules is not None:
            answer = self.rules(request.system, request.user)
            return Answer(answer) if isinstance(answer, str) else answer
        return Status(500, f"LLM stand-in: script exhausted at request #{number}; script more answers")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: LlmStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) resets the connection: expected, not noise.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLEOFError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5.0  # a client that sends headers and stalls cannot hold shutdown for long

    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest shows failures; per-request lines on stderr are noise

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        self.close_connection = True  # see the module docstring: no keep-alive, fast shutdown
        standin = self.server.standin
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        split = urlsplit(self.path)
        vendor: Vendor | None = None
        model: str | None = None
        if (match := _GEMINI_PATH.fullmatch(split.path)) is not None:
            vendor, model = "gemini", match["model"]
        elif split.path == _OPENAI_PATH:
            vendor = "openai"
            model = body.get("model") if isinstance(body, dict) else None
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw=raw,
            vendor=vendor,
            model=model if isinstance(model, str) else None,
        )
        number = standin._record(request)

        if vendor is None or self.command != "POST":
            family: Vendor = "gemini" if split.path.startswith("/v1beta") else "openai"
            self._send(_error(family, 404, f"Invalid URL ({self.command} {split.path})"))
            return
        rejection = _auth_error(vendor, request, split.query, standin.api_key)
        if rejection is None:
            rejection = _shape_error(vendor, raw, body)
        if rejection is not None:
            self._send(rejection)
            return
        self._answer(standin._next_item(request, number), vendor, request.model or "")

    def _answer(self, item: Item, vendor: Vendor, model: str) -> None:
        closing = self.server.standin._closing
        if isinstance(item, Delay):
            if closing.wait(item.seconds):
                return  # shutting down: drop the connection rather than hold shutdown
            item = item.then
        if isinstance(item, Drip):
            data = _render(item.then, vendor, model)
            for start in range(0, len(data), max(1, item.chunk)):
                self.wfile.write(data[start : start + max(1, item.chunk)])
                self.wfile.flush()
                if closing.wait(item.interval_s):
                    return
            return
        self._send(_render(item, vendor, model))

    def _send(self, response: bytes) -> None:
        self.wfile.write(response)
        self.wfile.flush()


# -- request checks ------------------------------------------------------------------------------


def _auth_error(vendor: Vendor, request: RecordedRequest, query: str, api_key: str | None) -> bytes | None:
    """The vendor's own answer to a missing or wrong key (Gemini: 403 missing, 400 invalid)."""
    if api_key is None:
        return None
    if vendor == "gemini":
        presented = request.headers.get("x-goog-api-key") or next(iter(parse_qs(query).get("key", [])), None)
        if not presented:
            return _error(
                "gemini",
                403,
                "Method doesn't allow unregistered callers (callers without established identity)."
                " Please use API Key or other form of API consumer identity to call this API.",
            )
        if presented != api_key:
            return _error(
                "gemini",
                400,
                "API key not valid. Please pass a valid API key.",
                details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
            )
        return None
    authorization = request.headers.get("authorization", "")
    if not authorization.startswith("Bearer ") or not authorization[7:].strip():
        return _error(
            "openai",
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization"
            " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    presented = authorization[7:].strip()
    if presented != api_key:
        masked = f"{presented[:3]}***{presented[-4:]}" if len(presented) > 12 else "***"
        return _error("openai", 401, f"Incorrect API key provided: {masked}.")
    return None


def _shape_error(vendor: Vendor, raw: bytes, body: Any) -> bytes | None:
    """A 400 for a request the vendor would refuse; catches drift in what the adapters send."""
    if not isinstance(body, dict):
        return _error(vendor, 400, "Invalid JSON payload received: the body is not a JSON object.")
    problem = _gemini_problem(body) if vendor == "gemini" else _openai_problem(body)
    return None if problem is None else _error(vendor, 400, problem)


def _gemini_problem(body: Mapping[str, Any]) -> str | None:
    unknown = sorted(set(body) - _GEMINI_TOP_LEVEL)
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for content in contents:
        if (
            not isinstance(content, dict)
            or not isinstance(content.get("parts"), list)
            or not content["parts"]
        ):
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
        if content.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model."
    system = body.get("systemInstruction", body.get("system_instruction"))
    if system is not None and (not isinstance(system, dict) or not isinstance(system.get("parts"), list)):
        return "* GenerateContentRequest.system_instruction.parts: must be a list"
    config = body.get("generationConfig", body.get("generation_config"))
    if config is None:
        return None
    if not isinstance(config, dict):
        return "* GenerateContentRequest.generation_config: must be an object"
    if "responseJsonSchema" in config and "responseSchema" in config:
        return "responseJsonSchema and responseSchema are mutually exclusive."
    has_schema = "responseJsonSchema" in config or "responseSchema" in config
    if has_schema and config.get("responseMimeType") != "application/json":
        return "* GenerateContentRequest.generation_config.response_mime_type: must be application/json"
    if "responseJsonSchema" in config and not isinstance(config["responseJsonSchema"], dict):
        return "* GenerateContentRequest.generation_config.response_json_schema: must be an object"
    return None


def _openai_problem(body: Mapping[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Missing required parameter: 'messages'."
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _OPENAI_ROLES:
            return f"Invalid value for 'messages[{index}].role'."
        content = message.get("content")
        if not isinstance(content, str | list) and not (message["role"] == "assistant" and content is None):
            return f"Invalid type for 'messages[{index}].content'."
    response_format = body.get("response_format")
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        return "Invalid value for 'response_format.type'."
    if response_format["type"] == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return "Missing required parameter: 'response_format.json_schema.name'."
        if not _SCHEMA_NAME.fullmatch(spec["name"]):
            return "Invalid 'response_format.json_schema.name': must match ^[a-zA-Z0-9_-]+$ (64 max)."
        if not isinstance(spec.get("schema"), dict):
            return "Invalid type for 'response_format.json_schema.schema': expected an object."
    return None


# -- responses -----------------------------------------------------------------------------------


def _render(item: Answer | Status | Blocked | Raw, vendor: Vendor, model: str) -> bytes:
    if isinstance(item, Status):
        return _error(vendor, item.code, item.message, headers=item.headers)
    if isinstance(item, Raw):
        if isinstance(item.body, bytes):
            data = item.body
        elif isinstance(item.body, str):
            data = item.body.encode()
        else:
            data = orjson.dumps(item.body)
        return _http(item.status, data, content_type=item.content_type)
    if vendor == "gemini":
        return _http(200, orjson.dumps(_gemini_envelope(item, model)))
    return _http(200, orjson.dumps(_openai_envelope(item, model)))


def _gemini_envelope(item: Answer | Blocked, model: str) -> dict[str, Any]:
    usage = {"promptTokenCount": 42, "totalTokenCount": 42}
    common = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    if isinstance(item, Blocked):
        return {"promptFeedback": {"blockReason": item.reason}, "usageMetadata": usage, **common}
    candidate: dict[str, Any] = {"finishReason": _GEMINI_FINISH[item.finish], "index": 0}
    if item.finish != "safety":
        candidate["content"] = {"role": "model", "parts": [{"text": item.text}]}
    tokens = max(1, len(item.text) // 4)
    usage = {"promptTokenCount": 42, "candidatesTokenCount": tokens, "totalTokenCount": 42 + tokens}
    return {"candidates": [candidate], "usageMetadata": usage, **common}


def _openai_envelope(item: Answer | Blocked, model: str) -> dict[str, Any]:
    message: dict[str, Any]
    if isinstance(item, Blocked):
        message = {"role": "assistant", "content": None, "refusal": item.refusal, "annotations": []}
        finish = "stop"
        tokens = 12
    else:
        message = {"role": "assistant", "content": item.text, "refusal": None, "annotations": []}
        finish = _OPENAI_FINISH[item.finish]
        tokens = max(1, len(item.text) // 4)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 42, "completion_tokens": tokens, "total_tokens": 42 + tokens},
        "system_fingerprint": None,
    }


def _error(
    vendor: Vendor,
    code: int,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> bytes:
    text = message if message is not None else _phrase(code)
    if vendor == "gemini":
        error: dict[str, Any] = {"code": code, "message": text, "status": _GEMINI_STATUS.get(code, "UNKNOWN")}
        if details:
            error["details"] = details
    else:
        kind = "tokens" if code == 429 else "server_error" if code >= 500 else "invalid_request_error"
        error = {
            "message": text,
            "type": kind,
            "param": None,
            "code": "rate_limit_exceeded" if code == 429 else None,
        }
        if code == 401 and "Incorrect API key" in text:
            error["code"] = "invalid_api_key"
    return _http(code, orjson.dumps({"error": error}), headers=headers)


def _http(
    code: int,
    body: bytes,
    *,
    content_type: str = "application/json; charset=UTF-8",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    lines = [
        f"HTTP/1.1 {code} {_phrase(code)}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


# -- prompt extraction (for rules and assertions) ------------------------------------------------


def _texts(parts: Iterable[Any]) -> str:
    return "".join(
        part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def _openai_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _texts(content)
    return ""


def _system_text(vendor: Vendor | None, body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if vendor == "gemini":
        system = body.get("systemInstruction", body.get("system_instruction"))
        parts = system.get("parts") if isinstance(system, dict) else None
        return _texts(parts) if isinstance(parts, list) else ""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    return "\n".join(
        _openai_content(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )


def _user_text(vendor: Vendor | None, body: Any) -> str:
    """The last user turn: what the model is being asked now."""
    if not isinstance(body, dict):
        return ""
    if vendor == "gemini":
        contents = body.get("contents")
        turns = [c for c in contents if isinstance(c, dict)] if isinstance(contents, list) else []
        users = [c for c in turns if c.get("role", "user") == "user" and isinstance(c.get("parts"), list)]
        return _texts(users[-1]["parts"]) if users else ""
    messages = body.get("messages")
    turns = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    users = [m for m in turns if m.get("role") == "user"]
    return _openai_content(users[-1].get("content")) if users else ""
