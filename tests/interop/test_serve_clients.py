"""``dotclient serve`` with real clients in front (dig, kdig, dnsperf, dnspython) and a
real unbound behind, on 127.0.0.1: what third-party clients send, the stub answers as
they expect. A missing kdig, dig or dnsperf skips, or fails under ``CI=true``
(``scripts/install-servers`` installs them). The stub's own behaviour (failures, cache,
limits, the command): tests/servers/test_serve.py."""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from dotclient.testing import UnboundServer

from support.stub import A_RECORDS, WAIT, StubThread, addresses, tcp, udp


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/install-servers installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: the serve tests must run in CI)", pytrace=False)
        pytest.skip(message)
    return path


# -- real clients ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["dig", "+short"],
        ["dig", "+short", "+tcp"],
        ["kdig", "+short"],
        ["kdig", "+short", "+tcp"],
        ["dig", "+short", "+noedns"],
    ],
    ids=" ".join,
)
def test_dig_and_kdig_over_udp_and_tcp(stub: StubThread, command: list[str]) -> None:
    binary = tool(command[0])
    out = subprocess.run(
        [binary, *command[1:], "-p", str(stub.port), "@127.0.0.1", "a.example.test", "A"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    ).stdout
    assert set(out.split()) == A_RECORDS


@pytest.mark.parametrize("transport", [udp, tcp], ids=["udp", "tcp"])
def test_dnspython_gets_its_id_flags_and_edns_back(
    stub: StubThread, transport: Callable[[int, dns.message.Message], dns.message.Message]
) -> None:
    for edns, dnssec in ((0, False), (0, True), (-1, False)):
        query = dns.message.make_query(
            "Www.Example.Test", "A", use_edns=edns, want_dnssec=dnssec, payload=1232
        )
        query.flags |= dns.flags.CD
        response = transport(stub.port, query)
        assert query.is_response(response)
        assert response.rcode() == dns.rcode.NOERROR
        assert addresses(response) == A_RECORDS  # through the two CNAMEs
        assert response.question[0].name.to_text() == "Www.Example.Test."  # 0x20 kept
        assert response.flags & dns.flags.RD and response.flags & dns.flags.CD
        assert response.edns == edns
        assert bool(response.ednsflags & dns.flags.DO) == dnssec
        # Padding was for the TLS hop: none comes back in clear.
        assert not [o for o in response.options if o.otype == dns.edns.OptionType.PADDING]


def test_nxdomain_passes_through_with_its_soa(stub: StubThread) -> None:
    response = udp(stub.port, dns.message.make_query("nx.example.test", "A", use_edns=0))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority and response.authority[0].rdtype == 6  # SOA


def test_big_txt_sets_tc_over_udp_and_dig_retries_over_tcp(stub: StubThread) -> None:
    for edns in (0, -1):  # EDNS with a 512-octet buffer, and no EDNS at all
        query = dns.message.make_query("big.example.test", "TXT", use_edns=edns, payload=512)
        truncated = udp(stub.port, query)
        assert truncated.flags & dns.flags.TC and not truncated.answer
        assert query.is_response(truncated)
        whole = tcp(stub.port, query)
        assert not whole.flags & dns.flags.TC
        assert sum(len(s) for s in whole.answer[0][0].strings) == 5 * 250
    roomy = udp(stub.port, dns.message.make_query("big.example.test", "TXT", payload=4096))
    assert not roomy.flags & dns.flags.TC and roomy.answer
    out = subprocess.run(
        [tool("dig"), "+bufsize=512", "-p", str(stub.port), "@127.0.0.1", "big.example.test"]
        + ["TXT"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    ).stdout
    assert "Truncated, retrying in TCP mode" in out
    assert "(TCP)" in out and "big-txt-string-4-" in out


def test_tcp_clients_may_pipeline(stub: StubThread) -> None:
    names = ["a", "www", "mixed", "nx", "big", "mail", "ns", "alias"] * 5
    queries = [dns.message.make_query(f"{n}.example.test", "A") for n in names]
    for i, query in enumerate(queries):
        query.id = i + 1
    with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as sock:
        sock.sendall(
            b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
        )
        answered = {}
        with sock.makefile("rb") as stream:
            for _ in queries:
                (length,) = struct.unpack("!H", stream.read(2))
                response = dns.message.from_wire(stream.read(length))
                answered[response.id] = response
    assert sorted(answered) == [q.id for q in queries]
    for query in queries:
        assert query.is_response(answered[query.id])


@pytest.mark.parametrize("mode", ["udp", "tcp"])
def test_dnsperf_through_the_stub(
    unbound: UnboundServer, start_stub: Callable[..., StubThread], tmp_path: Path, mode: str
) -> None:
    stub = start_stub(unbound, cache=None)  # every query goes upstream
    names = tmp_path / "queries.txt"
    names.write_text(
        "a.example.test A\nwww.example.test A\nnx.example.test A\nexample.test MX\n"
        "a.example.test AAAA\nbig.example.test TXT\n"
    )
    out = subprocess.run(
        [tool("dnsperf"), "-s", "127.0.0.1", "-p", str(stub.port), "-m", mode]
        + ["-d", str(names), "-n", "50", "-c", "4", "-q", "40", "-t", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert sent == 300 and completed == sent, out
    assert re.search(r"NOERROR \d+ \(83\.33%\)", out) and re.search(r"NXDOMAIN 50 ", out), out
