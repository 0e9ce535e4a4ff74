"""The agent's HTTP client against real servers: uvicorn for the common paths, raw sockets for the odd."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from infragent.agent.http import HttpClient, HttpError, Url
from support.servers import closed_port, serve


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "length": len(body),
            "auth": request.headers.get("authorization"),
            "body": body.decode(),
        }
    )


async def chunked(request: Request) -> Response:
    async def parts() -> Iterator[bytes]:  # type: ignore[misc]
        for i in range(5):
            yield f"part{i};".encode()

    return StreamingResponse(parts(), media_type="text/plain")


async def slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return Response("late")


async def status(request: Request) -> Response:
    return Response("nope", status_code=int(request.path_params["code"]), headers={"Retry-After": "7"})


APP = Starlette(
    routes=[
        Route("/base/echo", echo, methods=["GET", "POST"]),
        Route("/base/chunked", chunked),
        Route("/base/slow", slow),
        Route("/base/status/{code}", status, methods=["GET", "POST"]),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url + "/base/"


def test_post_round_trip_and_headers(base_url: str) -> None:
    body = ("x" * 100_000).encode()
    with HttpClient(base_url) as client:
        response = client.request("POST", "/echo?a=1", body, {"Authorization": "Bearer k"})
    assert response.status == 200
    assert response.header("Content-Type") == "application/json"
    data = response.body.decode()
    assert '"length":100000' in data and '"auth":"Bearer k"' in data and '"query":"a=1"' in data


def test_chunked_response(base_url: str) -> None:
    with HttpClient(base_url) as client:
        response = client.request("GET", "/chunked")
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"part0;part1;part2;part3;part4;"


def test_keep_alive_reuses_one_connection(base_url: str) -> None:
    with HttpClient(base_url) as client:
        for i in range(5):
            assert client.request("POST", "/echo", f"{i}".encode()).status == 200
        assert client.request("GET", "/chunked").status == 200
        assert client.connects == 1


def test_error_status_is_a_response_not_an_exception(base_url: str) -> None:
    with HttpClient(base_url) as client:
        response = client.request("POST", "/status/503", b"{}")
        assert (response.status, response.header("retry-after"), response.body) == (503, "7", b"nope")
        assert client.request("GET", "/status/404").status == 404


def test_timeout(base_url: str) -> None:
    with HttpClient(base_url, timeout_s=0.3) as client, pytest.raises(HttpError, match="timed out"):
        client.request("GET", "/slow")


def test_connection_refused() -> None:
    with HttpClient(f"http://127.0.0.1:{closed_port()}") as client, pytest.raises(HttpError, match="connect"):
        client.request("GET", "/")


def test_unknown_host() -> None:
    with HttpClient("http://no-such-host.invalid") as client, pytest.raises(HttpError):
        client.request("GET", "/")


def test_url_parsing() -> None:
    assert Url.parse("http://h:81/api/") == Url("http", "h", 81, "/api")
    assert Url.parse("https://h") == Url("https", "h", 443, "")
    assert Url.parse("http://[::1]:8470").host_header == "[::1]:8470"
    for bad in ("ftp://h", "h:80", "http://user@h/"):
        with pytest.raises(ValueError):
            Url.parse(bad)


# -- raw servers: a scripted sequence of replies on one listening socket -------------------------


@pytest.fixture
def raw_server() -> Iterator[Callable[[list[list[bytes]]], str]]:
    """``start(connections)``: each connection reads one request per reply and sends it; then closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def start(connections: list[list[bytes]]) -> str:
        def run() -> None:
            for replies in connections:
                conn, _ = listener.accept()
                with conn:
                    for reply in replies:
                        data = b""
                        while b"\r\n\r\n" not in data:
                            data += conn.recv(65536)
                        conn.sendall(reply)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    listener.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_stale_keep_alive_connection_is_retried_once(raw_server: Callable[[list[list[bytes]]], str]) -> None:
    # The first connection answers once and is then closed by the server, as an idle timeout would.
    url = raw_server([[OK], [OK]])
    with HttpClient(url) as client:
        assert client.request("GET", "/").body == b"ok"
        assert client.request("GET", "/").body == b"ok"
        assert client.connects == 2


def test_body_until_close_and_interim_100(raw_server: Callable[[list[list[bytes]]], str]) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nX-A: 1\r\nX-A: 2\r\n\r\nall of it"
    url = raw_server([[reply]])
    with HttpClient(url) as client:
        response = client.request("POST", "/", b"{}")
    assert (response.status, response.body, response.header("x-a")) == (200, b"all of it", "1, 2")


@pytest.mark.parametrize(
    "reply",
    [
        b"SPDY/9 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ],
)
def test_malformed_responses_are_http_errors(
    raw_server: Callable[[list[list[bytes]]], str], reply: bytes
) -> None:
    url = raw_server([[reply]])
    with HttpClient(url, timeout_s=2) as client, pytest.raises(HttpError):
        client.request("GET", "/")


def test_header_injection_is_refused(base_url: str) -> None:
    with HttpClient(base_url) as client, pytest.raises(ValueError, match="line break"):
        client.request("GET", "/echo", headers={"X-Evil": "a\r\nHost: b"})
