"""The scripted server the fault tests stand on: closing it never hands a handler what
its TLS layer has not decrypted."""

from __future__ import annotations

import select
import threading

import dns.message
import dns.name

import dotclient
from dotclient.testing import IssuedCert

from support.fakeserver import FakeConnection, FakeServer, answer


def test_closing_the_server_never_hands_a_handler_ciphertext(
    server_cert: IssuedCert, ca_file: str
) -> None:
    # A handler blocked while the client's next query waits in the kernel, undecrypted,
    # and the server shut down under it (as its __exit__ does). Shutting the connection
    # down through SSLSocket.shutdown dropped the TLS object, and the handler's next
    # read returned the raw TLS record: a CI run parsed DNS frames out of ciphertext.
    waiting = threading.Event()
    resume = threading.Event()
    read: list[object] = []

    def handler(conn: FakeConnection) -> None:
        if waiting.is_set():
            return  # the client's resend, on a new connection: not the case here
        query = conn.read_query()
        assert query is not None
        conn.send_message(answer(query))
        # The next query's record is in the socket's receive queue, still encrypted.
        select.select([conn.sock], [], [], 10)
        waiting.set()
        resume.wait(10)
        try:
            read.append(conn.sock.recv(65536))
        except OSError as exc:
            read.append(exc)

    with FakeServer(server_cert, handler) as server:
        with dotclient.Client(server.spec, ca_file=ca_file, timeout=10) as client:
            client.resolve("warm.test")
            caller = threading.Thread(target=_resolve_quietly, args=(client, "next.test"))
            caller.start()
            assert waiting.wait(10)
            server.shutdown_connections()
            resume.set()
            caller.join(20)
    assert len(read) == 1
    if isinstance(read[0], bytes) and read[0]:
        # What TLS decrypted (Linux still delivers data queued before the shutdown):
        # one framed query, not a TLS record.
        wire = read[0][2:]
        assert int.from_bytes(read[0][:2], "big") == len(wire), read[0]
        assert dns.message.from_wire(wire).question[0].name == dns.name.from_text("next.test")


def _resolve_quietly(client: dotclient.Client, name: str) -> None:
    try:
        client.resolve(name)
    except dotclient.DoTError:
        pass  # the server went away under it: that is the point
