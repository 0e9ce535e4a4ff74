"""No secret reported by a host reaches the LLM: every field the prompt draws from, seeded, then grepped.

Why the raw request: what leaves the machine is the HTTP body the LLM stand-in received, not the
string the responder meant to send; the audit copy must show that same redacted text.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.health import CheckTransition
from infragent.model import ActionSpec, Severity
from infragent.responder.llm import build_llm_client
from infragent.store.sql import SqlStore
from support.databases import get_event_detail, insert_event, register_agent
from support.llm_standin import Answer, LlmStandIn
from support.responders import Receiver, make_responder

ANSWER = '{"action": "restart", "target": "web", "params": {"name": "web"}, "rationale": "it is down"}'

# A private key body split so that no scanner mistakes this file for a leaked key.
PEM = (
    "-----BEGIN RSA "
    + "PRIVATE KEY-----\nMIIEpemBodyF7a1\nQWERTYpemBodyF7a2\n-----END RSA "
    + "PRIVATE KEY-----"
)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqd3RTZWNyZXRGN2EzIn0.c2lnbmF0dXJlSldURjdhMw"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"


@pytest.fixture
def llm() -> Iterator[LlmStandIn]:
    with LlmStandIn(api_key="llm-key") as standin:
        yield standin


def test_no_seeded_secret_reaches_the_llm_from_any_prompt_field(
    store: SqlStore, receiver: Receiver, llm: LlmStandIn
) -> None:
    client_id = receiver.reg.client.id
    node = "db-1 token=node-tok-Q81"
    service = "postgres://app:svc-pass-Q82@db.internal:5432/app"
    check_output = "HTTP 500 from /login: client_secret=check-sec-Q83 rejected by upstream"
    command_output = "$ env\nDB_PASSWORD=cmd-pass-Q84\nAPI_TOKEN: cmd-tok-Q85\nHOME=/root"
    # (secret, what must survive beside it: the redactor masks the secret, not the context)
    seeded = {
        "node id": ("node-tok-Q81", "db-1"),
        "service name": ("svc-pass-Q82", "db.internal:5432"),
        "check output": ("check-sec-Q83", "rejected by upstream"),
        "command output, key=value": ("cmd-pass-Q84", "HOME=/root"),
        "command output, key: value": ("cmd-tok-Q85", "$ env"),
        "API key": (receiver.reg.api_key.split("_", 2)[2], "ia_"),
        "webhook secret": (receiver.reg.client.webhook_secret.removeprefix("whsec_"), "whsec_"),
        "bearer token": ("bear-tok-Q86", "Bearer"),
        "header named like a secret": ("hdr-tok-Q92", "headers"),
        "password in a URL": ("url-pass-Q87", "10.0.0.5"),
        "private key block": ("pemBodyF7a", "cert rotated"),
        "JWT": (JWT, "session"),
        "AWS access key id": (AWS_ID, "aws"),
        "AWS secret key": (AWS_SECRET, "aws"),
        "value of a key named like a secret": ("nested-pass-Q88", "db_password"),
        "key=value in free text": ("log-pass-Q89", "login failed"),
        "event type": ("type-tok-Q90", "disk_full"),
        "action description": ("desc-tok-Q91", "Restart the service"),
    }
    register_agent(
        store,
        client_id,
        node,
        kind="agent",
        command_mode="push",
        actions=[
            ActionSpec("restart", {"name": r"[a-z0-9_-]+"}, "Restart the service (api_token=desc-tok-Q91)")
        ],
        labels={},
        now=1.0,
    )
    check = CheckTransition("app_down", "web", 2.0, 1.0, 3, check_output, 12.0)
    first = insert_event(
        store,
        client_id,
        type="app_down?token=type-tok-Q90",
        service=service,
        severity=Severity.CRITICAL,
        data=check.details(),
        node_id=node,
        now=2.0,
    )
    second = insert_event(
        store,
        client_id,
        type="disk_full",
        service="web",
        severity=Severity.CRITICAL,
        data={
            "command_output": command_output,
            "agent": f"started with {receiver.reg.api_key}",
            "webhook": f"signed with {receiver.reg.client.webhook_secret}",
            "request": "GET /x HTTP/1.1\r\nAuthorization: Bearer bear-tok-Q86\r\n",
            "headers": {"Authorization": "Bearer hdr-tok-Q92"},
            "upstream": "mysql://root:url-pass-Q87@10.0.0.5/db",
            "note": f"cert rotated: {PEM}",
            "session": JWT,
            "aws": [AWS_ID, AWS_SECRET],
            "config": {"db_password": {"primary": "nested-pass-Q88"}},
            "log": "login failed for bob (password=log-pass-Q89)",
        },
        node_id=node,
        now=3.0,
    )
    llm.script(Answer(ANSWER))
    client = build_llm_client(
        "openai", base_url=llm.openai_base_url, model="m", api_key="llm-key", timeout_s=5
    )
    assert make_responder(store, llm=client).drain() == 2

    (request,) = llm.requests
    sent = request.raw.decode()
    leaked = [field for field, (secret, _) in seeded.items() if secret in sent]
    assert leaked == [], f"secrets sent to the LLM from: {leaked}"
    lost = [field for field, (_, context) in seeded.items() if context not in request.user]
    assert lost == [], f"context redacted along with the secret: {lost}"
    detail = get_event_detail(store, client_id, second.id)
    assert detail is not None and detail.decision is not None
    assert detail.decision["source"] == "llm" and detail.decision["action"] == "restart"
    audited = detail.decision["prompt"]
    assert request.user in audited  # the audit holds exactly what was sent
    assert [f for f, (secret, _) in seeded.items() if secret in audited] == []
    coalesced = get_event_detail(store, client_id, first.id)
    assert coalesced is not None and coalesced.decision is not None
    assert coalesced.decision["id"] == detail.decision["id"]  # both events were in the one prompt
