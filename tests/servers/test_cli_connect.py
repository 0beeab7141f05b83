"""The connection options of the CLI (issue 17): --bootstrap, --source, --proxy,
--client-cert and --client-key, on query, probe and bulk, against real parts."""

from __future__ import annotations

import datetime
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from dotclient.testing import IssuedCert, TestCA, UnboundServer

from support.cli import run
from support.connparts import ZONE, Microsocks, NginxTLS, running


@pytest.fixture(scope="module")
def long_cert(test_ca: TestCA) -> IssuedCert:
    """A certificate valid for 90 days: no expiry warning from probe."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return test_ca.issue("dot.test", "127.0.0.1", not_after=now + datetime.timedelta(days=90))


@pytest.fixture
def logging_unbound(
    unbound_factory: Callable[..., UnboundServer], long_cert: IssuedCert
) -> UnboundServer:
    return unbound_factory(long_cert, zone=ZONE, extra_config="    log-queries: yes")


def test_query_with_bootstrap_and_source(
    logging_unbound: UnboundServer,
    ca_file: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_lookup(host: object, *args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_AGAIN, f"no system resolver here ({host})")

    port = logging_unbound.port
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)  # any cleartext lookup fails
    code, out, err = run(
        capsys,
        "query",
        "a.example.test",
        "--server",
        f"srv.example.test:{port}#dot.test",
        "--bootstrap",
        f"127.0.0.1:{port}#dot.test",
        "--source",
        "127.0.0.2",
        "--ca-file",
        ca_file,
        "--json",
    )
    assert code == 0, err
    assert "192.0.2.1" in out
    lines = logging_unbound.log.splitlines()
    assert any("127.0.0.2 srv.example.test. A IN" in line for line in lines), lines
    assert any("127.0.0.2 a.example.test. A IN" in line for line in lines), lines


def test_probe_with_a_client_certificate(
    unbound_factory: Callable[..., UnboundServer],
    long_cert: IssuedCert,
    test_ca: TestCA,
    ca_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = unbound_factory(plain_port=0)
    assert backend.plain_port
    cert, key = test_ca.issue("client.test", client=True).write(tmp_path, "client")
    with running(NginxTLS(long_cert, test_ca.cert_pem, backend.plain_port)) as nginx:
        spec = f"127.0.0.1:{nginx.port}#dot.test"
        base = ["probe", spec, "--ca-file", ca_file, "--name", "a.example.test", "--json"]
        code, out, err = run(capsys, *base, "--client-cert", cert, "--client-key", key)
        report = json.loads(out)
        # OK: the raw steps (TLS, answer order) present the certificate too.
        assert (code, report["verdict"]) == (0, "OK"), report["reason"]
        assert "error" not in report["out_of_order"]
        assert report["authenticated"] is True
        assert report["resumption"]["resumed"] is True  # with the client certificate
        code, out, err = run(capsys, *base)
        assert code in (3, 4, 5), (out, err)  # without it the server refuses


def test_bulk_through_a_socks5_proxy(
    unbound: UnboundServer, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("a.example.test\nmail.example.test\n")
    with running(Microsocks()) as proxy:
        assert isinstance(proxy, Microsocks)
        code, out, err = run(
            capsys,
            "bulk",
            str(names),
            "--server",
            f"localhost:{unbound.port}#dot.test",
            "--proxy",
            f"socks5h://127.0.0.1:{proxy.port}",
            "--ca-file",
            ca_file,
        )
        assert code == 0, err
        assert len(out.splitlines()) == 2
        assert proxy.connects and all("localhost" in line for line in proxy.connects)


def test_probe_with_bootstrap_through_a_proxy_looks_nothing_up_in_cleartext(
    logging_unbound: UnboundServer,
    ca_file: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = socket.getaddrinfo
    asked: list[object] = []

    def literal_only(host: object, *args: object, **kwargs: object) -> object:
        if not str(host).replace(".", "").isdigit():
            asked.append(host)
            raise socket.gaierror(socket.EAI_AGAIN, f"no system resolver here ({host})")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    port = logging_unbound.port
    monkeypatch.setattr(socket, "getaddrinfo", literal_only)
    direct: list[object] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[1] == port:
            direct.append(address)
        real_connect(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    with running(Microsocks()) as proxy:
        assert isinstance(proxy, Microsocks)
        code, out, err = run(
            capsys,
            "probe",
            f"srv.example.test:{port}#dot.test",
            "--bootstrap",
            f"127.0.0.1:{port}#dot.test",
            "--proxy",
            f"socks5://127.0.0.1:{proxy.port}",
            "--ca-file",
            ca_file,
            "--name",
            "a.example.test",
            "--json",
        )
        report = json.loads(out)
        assert report["tcp"]["address"] == "127.0.0.1", out
        assert (code, report["verdict"]) == (0, "OK"), report["reason"]
        # Every connection went through the proxy: the raw TCP, TLS and ordering steps
        # and the library's (bootstrap lookups included).
        assert len(proxy.connects) >= 4, proxy.log
    assert asked == []
    assert direct == []  # no step of the probe went to the server but through the proxy
