"""The outbound-URL policy, table-driven: which addresses a tenant's URL may reach, and why not.

Why a table: the policy is the whole defence against SSRF through webhook URLs, and every address
form an attacker can write (IPv4, IPv6, IPv4-mapped and embedded IPv6, metadata endpoints) is a row
here with the answer under the default policy and under an operator's allow-list.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from infragent.outbound.policy import OutboundPolicy, check_url

DEFAULT = OutboundPolicy()
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
LAB = OutboundPolicy.from_cidrs(["10.0.0.0/8", "fd12:3456::/32", "127.0.0.0/8"])
EVERYTHING = OutboundPolicy.from_cidrs(["0.0.0.0/0", "::/0"])

# address, allowed by DEFAULT, LOOPBACK, LAB, EVERYTHING, why (words the refusal under DEFAULT carries)
CASES: list[tuple[str, bool, bool, bool, bool, str]] = [
    # public addresses: always fine
    ("8.8.8.8", True, True, True, True, "public"),
    ("93.184.216.34", True, True, True, True, "public"),
    ("2606:4700:4700::1111", True, True, True, True, "public"),
    # cloud metadata and link-local: never, whatever the allow-list says
    ("169.254.169.254", False, False, False, False, "never allowed"),
    ("169.254.0.1", False, False, False, False, "never allowed"),
    ("100.100.100.200", False, False, False, False, "never allowed"),
    ("fd00:ec2::254", False, False, False, False, "never allowed"),
    ("fe80::1", False, False, False, False, "never allowed"),
    ("febf:ffff::1", False, False, False, False, "never allowed"),
    ("::ffff:169.254.169.254", False, False, False, False, "never allowed"),  # IPv4-mapped
    ("::ffff:a9fe:a9fe", False, False, False, False, "never allowed"),  # the same, in hex
    ("64:ff9b::a9fe:a9fe", False, False, False, False, "never allowed"),  # NAT64 of the metadata IP
    ("2002:a9fe:a9fe::1", False, False, False, False, "never allowed"),  # 6to4 of the metadata IP
    ("::169.254.169.254", False, False, False, False, "never allowed"),  # IPv4-compatible
    # loopback
    ("127.0.0.1", False, True, True, True, "loopback"),
    ("127.1.2.3", False, True, True, True, "loopback"),
    ("::1", False, False, False, True, "loopback"),
    ("::ffff:127.0.0.1", False, True, True, True, "loopback"),
    # private, shared and special ranges
    ("10.1.2.3", False, False, True, True, "private"),
    ("172.16.0.1", False, False, False, True, "private"),
    ("172.31.255.254", False, False, False, True, "private"),
    ("192.168.1.1", False, False, False, True, "private"),
    ("::ffff:10.0.0.1", False, False, True, True, "private"),
    ("::ffff:192.168.0.1", False, False, False, True, "private"),
    ("100.64.0.1", False, False, False, True, "private"),  # CGNAT shared space
    ("100.127.255.254", False, False, False, True, "private"),
    ("fc00::1", False, False, False, True, "private"),
    ("fd12:3456::1", False, False, True, True, "private"),
    ("0.0.0.0", False, False, False, True, "unspecified"),
    ("::", False, False, False, True, "unspecified"),
    ("224.0.0.1", False, False, False, True, "multicast"),
    ("224.0.1.1", False, False, False, True, "multicast"),  # a "global" multicast group
    ("ff0e::1", False, False, False, True, "multicast"),
    ("255.255.255.255", False, False, False, True, "reserved"),
    ("240.0.0.1", False, False, False, True, "reserved"),
    ("192.0.2.1", False, False, False, True, "private"),  # documentation
    ("198.18.0.1", False, False, False, True, "private"),  # benchmarking
    ("2001:db8::1", False, False, False, True, "private"),  # documentation
    ("64:ff9b::0a00:0001", False, False, True, True, "private"),  # NAT64 of 10.0.0.1
    ("2002:0a00:0001::1", False, False, True, True, "private"),  # 6to4 of 10.0.0.1
]


@pytest.mark.parametrize(("address", "default", "loopback", "lab", "everything", "why"), CASES)
def test_classification(
    address: str, default: bool, loopback: bool, lab: bool, everything: bool, why: str
) -> None:
    got = [p.judge(address).allowed for p in (DEFAULT, LOOPBACK, LAB, EVERYTHING)]
    assert got == [default, loopback, lab, everything]
    verdict = DEFAULT.judge(address)
    assert why in verdict.reason
    if not verdict.allowed and why != "never allowed":
        assert "webhook_allowed_networks" in verdict.reason  # the refusal says how to allow it


def test_a_refusal_under_an_allow_list_still_names_the_setting() -> None:
    assert "webhook_allowed_networks" in LOOPBACK.judge("10.0.0.1").reason
    assert "allowed by webhook_allowed_networks (127.0.0.0/8)" in LOOPBACK.judge("127.0.0.1").reason


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "not-a-network", "300.0.0.0/8", ""])
def test_bad_cidrs_are_refused(cidr: str) -> None:
    with pytest.raises(ValueError):
        OutboundPolicy.from_cidrs([cidr])


@pytest.mark.parametrize(
    ("addresses", "chosen", "allowed"),
    [
        (["127.0.0.1", "::1"], "127.0.0.1", True),
        (["::1", "127.0.0.1"], "127.0.0.1", True),  # the first allowed one, not the first one
        (["169.254.169.254", "127.0.0.1"], "127.0.0.1", True),  # a refused address is never used
        (["::1", "169.254.169.254"], "::1", False),  # none allowed: the first refusal
    ],
)
def test_choose_takes_the_first_allowed_address(addresses: list[str], chosen: str, allowed: bool) -> None:
    verdict = LOOPBACK.choose(addresses)
    assert (str(verdict.address), verdict.allowed) == (chosen, allowed)


class Resolver:
    """A resolver stand-in that counts its calls: names resolve from a table, nothing else does."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise OSError(f"{host}: name does not resolve")
        return self.table[host]


@pytest.mark.parametrize(
    ("url", "policy", "refusal"),
    [
        ("http://169.254.169.254/latest/meta-data/", LOOPBACK, "169.254.169.254"),
        ("http://[fd00:ec2::254]/latest", EVERYTHING, "never allowed"),
        ("http://127.0.0.1:9/hook", DEFAULT, "loopback"),
        ("http://127.0.0.1:9/hook", LOOPBACK, None),
        ("http://[::ffff:127.0.0.1]:9/hook", LOOPBACK, None),
        ("https://hooks.example.com/x", DEFAULT, None),
        ("https://internal.example.com/x", DEFAULT, "10.0.0.7"),
        ("https://metadata.example.com/x", EVERYTHING, "never allowed"),
        ("http://nowhere.example.com/x", DEFAULT, "does not resolve"),
        ("ftp://hooks.example.com/x", DEFAULT, "http or https"),
        ("http:///x", DEFAULT, "no host"),
    ],
)
def test_check_url(url: str, policy: OutboundPolicy, refusal: str | None) -> None:
    resolve = Resolver(
        {
            "hooks.example.com": ["93.184.216.34"],
            "internal.example.com": ["10.0.0.7"],
            "metadata.example.com": ["169.254.169.254"],
        }
    )
    got = check_url(url, policy, resolve)
    if refusal is None:
        assert got is None
    else:
        assert got is not None and refusal in got
    assert len(resolve.calls) <= 1  # a literal address is not looked up; a name once
