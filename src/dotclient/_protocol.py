"""The sans-I/O DoT protocol core: query IDs, response matching, validation.

Nothing here touches a socket, a clock or an event loop. Bytes to send come out of
:meth:`DoTProtocol.send_question` (the lean path for the common query shape) or
:meth:`DoTProtocol.send_query` (any dnspython message); bytes read from the connection go into
:meth:`DoTProtocol.receive_data` (``b""`` means the peer closed it); the outcome of each
query is collected with :meth:`DoTProtocol.result`. Responses may arrive in any order
(RFC 7766 section 6.2.1.1): each one is filed under its query ID, so the I/O shells only
move bytes and wait.

The framing is in ``_framing.py``, the building of queries (and the lean path's
templates) in ``_query.py``, the byte-level walk that checks a lean answer in
``_wire.py``.
"""

from __future__ import annotations

import secrets

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ._exceptions import ConnectionLost, ProtocolError
from ._framing import DNS_HEADER_SIZE, FrameDecoder, encode_frame
from ._query import (
    DEFAULT_PADDING_BLOCK,
    MAX_PADDING_BLOCK,
    TEMPLATES,
    Template,
    add_template,
    render_with_mac,
)
from ._wire import _KEEPALIVE, _U16, _U16U16, _rcode, _skim

# Random query IDs drawn from the OS CSPRNG in one call (two octets each).
_IDS_PER_DRAW = 128
_ID_OCTETS = 2 * _IDS_PER_DRAW

__all__ = ["DoTProtocol"]

_QUERY = dns.opcode.QUERY
# Responses that may come back without a question section (dnspython's is_response rule).
_QUESTIONLESS_RCODES = frozenset(
    {dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED}
)


def _describe(question: dns.rrset.RRset) -> str:
    return (
        f"{question.name} {dns.rdataclass.to_text(question.rdclass)} "
        f"{dns.rdatatype.to_text(question.rdtype)}"
    )


class _Pending:
    """What the response to one query in flight is checked against."""

    __slots__ = ("keepalive", "keyring", "mac", "opcode", "question")

    def __init__(self, message: dns.message.Message, mac: bytes | None, keepalive: bool) -> None:
        self.question = message.question[0]  # send_query requires exactly one
        self.opcode = message.opcode()
        self.keyring = message.keyring
        self.mac = mac
        #: The query offered edns-tcp-keepalive (RFC 7828 section 3.2.2 then applies).
        self.keepalive = keepalive


class DoTProtocol:
    """The state of one DoT connection, without the connection.

    Typical use by an I/O shell::

        proto = DoTProtocol()
        qid, data = proto.send_question(dns.name.from_text("example.com."), 1, 1)
        write(data)
        while (wire := proto.result(qid)) is None:
            proto.receive_data(read())    # read() returns b"" when the peer closed

    :meth:`result` raises :class:`ProtocolError` when the response to that query was
    malformed or did not match it, and :class:`ConnectionLost` when the connection ended
    before it came. Responses that match no query in flight (a stray ID, a second
    answer to the same query, an answer to an abandoned query) are dropped and counted
    in :attr:`unmatched`.

    ``padding`` is the RFC 8467 block size queries are padded to (0: no padding);
    ``keepalive=True`` adds an empty edns-tcp-keepalive option to every query (RFC 7828
    section 3.2.1), and :attr:`keepalive_timeout` tells what the server offered.
    """

    #: Query IDs a connection has (16 bits): those of queries in flight and abandoned
    #: ones together may not exceed it. A shell must not send when they would.
    QUERY_IDS = 65536

    def __init__(self, *, padding: int = DEFAULT_PADDING_BLOCK, keepalive: bool = False) -> None:
        if not 0 <= padding <= MAX_PADDING_BLOCK:
            raise ValueError(
                f"padding block must be 0 (off) to {MAX_PADDING_BLOCK} octets, not {padding}"
            )
        self.padding = padding
        self.keepalive = keepalive
        self._decoder = FrameDecoder()
        self._pending: dict[int, _Pending | Template] = {}
        self._results: dict[int, dns.message.Message | bytes | Exception] = {}
        # IDs of queries given up on (timed out, cancelled): not reused on this
        # connection, so a late answer can never be taken for a newer query's.
        self._abandoned: set[int] = set()
        # Every ID in _pending, _results or _abandoned: the IDs not to hand out.
        self._reserved: set[int] = set()
        # Random IDs drawn from the OS and not handed out yet (see _allocate_id).
        self._fresh_ids: list[int] = []
        self._error: ProtocolError | None = None
        self._eof = False
        #: Count of responses dropped because they matched no query in flight.
        self.unmatched = 0
        #: Count of responses delivered (matched and valid).
        self.answered = 0
        #: The idle timeout in seconds the server last offered in an edns-tcp-keepalive
        #: option (RFC 7828 section 3.2.2; the option counts units of 100 ms), or None.
        self.keepalive_timeout: float | None = None

    # -- sending -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the peer closed the connection or broke the framing."""
        return self._eof or self._error is not None

    @property
    def partial(self) -> str | None:
        """Where the stream stands if it stopped inside a frame (``"inside a message
        (38 of 468 octets)"``), else None."""
        return self._decoder.describe_partial()

    @property
    def in_flight(self) -> int:
        """Queries sent and not yet answered, failed or abandoned."""
        return len(self._pending)

    @property
    def abandoned(self) -> int:
        """Count of abandoned query IDs, kept out of use for the rest of the connection."""
        return len(self._abandoned)

    def _allocate_id(self) -> int:
        reserved = self._reserved
        if len(reserved) >= self.QUERY_IDS:  # the shell's bug: see QUERY_IDS
            raise RuntimeError("all 65,536 query IDs are in use on this connection")
        while True:
            ids = self._fresh_ids
            if not ids:
                # RFC 5452 section 9.2: IDs must be unpredictable; secrets uses the OS
                # CSPRNG. Drawn _IDS_PER_DRAW at a time: a system call per query was
                # 2.6% of the client's time at 100 in flight. (A process forked with a
                # connection never uses it: the pool drops inherited connections.)
                ids = self._fresh_ids = list(memoryview(secrets.token_bytes(_ID_OCTETS)).cast("H"))
            qid = ids.pop()
            if qid not in reserved:
                reserved.add(qid)
                return qid

    def send_question(
        self,
        qname: dns.name.Name,
        rdtype: int,
        rdclass: int,
        *,
        dnssec: bool = False,
    ) -> tuple[int, bytes]:
        """Register a query for (``qname``, ``rdtype``, ``rdclass``) under a fresh random
        ID; return the ID and the framed bytes to write.

        The bytes are exactly those of :func:`make_query` with the same arguments and
        this connection's padding, rendered by :func:`render_query` (plus the keepalive
        option if enabled), without dnspython's per-query cost. The response is checked
        from its bytes where that is certain (see :meth:`result`). Bad names or types
        raise ``ValueError``; :class:`ConnectionLost` once the connection has ended.
        """
        if self.closed:
            raise ConnectionLost("the connection has already ended")
        if not isinstance(qname, dns.name.Name):
            raise TypeError(f"qname must be a dns.name.Name, not {type(qname).__name__}")
        key = (qname.labels, rdtype, rdclass, dnssec, self.padding, self.keepalive)
        template = TEMPLATES.get(key)
        if template is None:
            template = add_template(key, qname)
        qid = self._allocate_id()
        self._pending[qid] = template
        return qid, _U16U16.pack(template.length, qid) + template.tail

    def send_query(self, message: dns.message.Message) -> tuple[int, bytes]:
        """Register ``message`` as a query in flight under a fresh random ID.

        Returns the ID and the framed bytes to write. The ``message`` object itself is
        not modified. Raises :class:`ConnectionLost` once the connection has ended.
        """
        if self.closed:
            raise ConnectionLost("the connection has already ended")
        if len(message.question) != 1:
            raise ValueError(f"a query needs exactly one question, not {len(message.question)}")
        qid = self._allocate_id()
        try:
            wire, mac = render_with_mac(message, qid, self.padding, self.keepalive)
        except BaseException:
            self._reserved.discard(qid)
            raise
        offered = self.keepalive or (
            message.edns >= 0 and any(o.otype == _KEEPALIVE for o in message.options)
        )
        self._pending[qid] = _Pending(message, mac, offered)
        return qid, encode_frame(wire)

    def abandon(self, query_id: int) -> None:
        """Stop waiting for ``query_id``; a late answer to it will be dropped."""
        if self._pending.pop(query_id, None) is not None:
            self._abandoned.add(query_id)
        elif self._results.pop(query_id, None) is not None:
            self._reserved.discard(query_id)

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[int]:
        """Process bytes read from the connection; ``b""`` means the peer closed it.

        Returns the IDs of the queries whose outcome (a response or an error) is now
        ready for :meth:`result`, so a shell can wake just their waiters. Raises
        :class:`ProtocolError` if the byte stream is not valid DNS-over-TCP framing;
        every query in flight then fails with that error too. Answers that came in
        ``data`` before the broken frame are still filed, and :meth:`result` returns
        them, but a call that raises lists no IDs: on this error, wake every waiter.
        """
        if self._error is not None or self._eof:
            return []
        if not data:
            self._eof = True
            where = self._decoder.describe_partial()
            reason = "the server closed the connection"
            if where:
                reason += f" {where}"
            ready = list(self._pending)
            for qid in ready:
                self._fail(qid, ConnectionLost(f"{reason} before answering query {qid}"))
            return ready
        try:
            frames = self._decoder.feed(data)
        except ProtocolError:
            frames = []
        ready = []
        for frame in frames:
            done = self._receive_message(frame)
            if done is not None:
                ready.append(done)
        exc = self._decoder.error
        if exc is not None:
            self._error = exc
            for qid in list(self._pending):
                self._fail(qid, ProtocolError(f"{exc} (query {qid} was in flight)"))
            raise exc
        return ready

    def _fail(self, qid: int, error: Exception) -> None:
        del self._pending[qid]
        self._results[qid] = error

    def _deliver(self, qid: int, outcome: dns.message.Message | bytes) -> None:
        del self._pending[qid]
        self._results[qid] = outcome
        self.answered += 1

    def _receive_message(self, wire: bytes) -> int | None:
        qid: int = _U16.unpack_from(wire, 0)[0]
        pending = self._pending.get(qid)
        if pending is None:
            self.unmatched += 1
            return None
        if not wire[2] & 0x80:
            self._fail(
                qid, ProtocolError(f"the message for query {qid} has no QR bit: not a response")
            )
            return qid
        if isinstance(pending, Template):
            if self._lean_accept(wire, pending):
                self._deliver(qid, wire)
                return qid
            # Not certain from the bytes: dnspython decides, and words any error.
            response = self._parse(
                qid, wire, None, None, _QUERY, pending.question(), self.keepalive
            )
            if response is not None:
                self._deliver(qid, wire)
            return qid
        response = self._parse(
            qid,
            wire,
            pending.keyring,
            pending.mac,
            pending.opcode,
            pending.question,
            pending.keepalive,
        )
        if response is not None:
            self._deliver(qid, response)
        return qid

    def _lean_accept(self, wire: bytes, template: Template) -> bool:
        """True if ``wire`` is certainly a valid response to ``template``'s question, and
        certainly one ``dns.message.from_wire`` parses: the same verdict as the full path,
        from the bytes. False means "not certain", not "invalid"."""
        if (wire[2] >> 3) & 0x0F != _QUERY:
            return False
        qdcount = wire[4:6]
        if qdcount == b"\x00\x01":
            name_end = DNS_HEADER_SIZE + len(template.qname_lower)
            pos = name_end + 4
            # The question echoes ours, name case aside (RFC 4343), uncompressed.
            if (
                wire[DNS_HEADER_SIZE:name_end].lower() != template.qname_lower
                or wire[name_end:pos] != template.typeclass
            ):
                return False
        elif qdcount == b"\x00\x00":
            pos = DNS_HEADER_SIZE
        else:
            return False
        skim = _skim(wire, pos, strict=True)
        if skim is None:
            return False
        opt_ttl, keepalive = skim
        if pos == DNS_HEADER_SIZE and _rcode(wire, opt_ttl) not in _QUESTIONLESS_RCODES:
            return False
        self._keepalive_seen(self.keepalive, keepalive)
        return True

    def _keepalive_seen(self, offered: bool, data: bytes | None) -> None:
        """RFC 7828 section 3.2.2: honour the TIMEOUT of a response's keepalive option
        (overriding any earlier one); a response without the option to a query that
        offered it means the server does not support it, "even if a previous
        edns-keepalive-option exchange occurred": back to the client's own idle
        timeout (RFC 7766 section 6.2.3)."""
        if data is not None and len(data) == 2:
            self.keepalive_timeout = _U16.unpack(data)[0] / 10
        elif data is None and offered:
            self.keepalive_timeout = None

    def _parse(
        self,
        qid: int,
        wire: bytes,
        keyring: object,
        mac: bytes | None,
        opcode: dns.opcode.Opcode,
        question: dns.rrset.RRset,
        offered: bool,
    ) -> dns.message.Message | None:
        """Parse and check ``wire`` with dnspython; on failure, fail ``qid`` and return
        None."""
        try:
            response = dns.message.from_wire(
                wire,
                keyring=keyring,
                request_mac=mac or b"",
                one_rr_per_rrset=False,
            )
        except Exception as exc:  # dnspython raises many types for bad input
            self._fail(
                qid,
                ProtocolError(f"malformed response to query {qid}: {type(exc).__name__}: {exc}"),
            )
            return None
        if keyring is not None and not response.had_tsig:
            # RFC 8945 section 5.3.1: an unsigned answer to a signed query is rejected
            # (not every dnspython version does this in from_wire).
            self._fail(qid, ProtocolError(f"unsigned response to TSIG-signed query {qid}"))
            return None
        problem = self._mismatch(opcode, question, response)
        if problem is not None:
            self._fail(qid, ProtocolError(f"response to query {qid} does not match: {problem}"))
            return None
        data = None
        for option in response.options:
            if option.otype == _KEEPALIVE:
                data = option.to_wire() or b""
        self._keepalive_seen(offered, data)
        return response

    @staticmethod
    def _mismatch(
        opcode: dns.opcode.Opcode, asked: dns.rrset.RRset, response: dns.message.Message
    ) -> str | None:
        if response.opcode() != opcode:
            return f"opcode {response.opcode().name}, expected {opcode.name}"
        if not response.question:
            if response.rcode() in _QUESTIONLESS_RCODES:
                return None
            return "no question section"
        if len(response.question) != 1:
            return f"{len(response.question)} questions"
        got = response.question[0]
        # dns.name.Name compares case-insensitively (RFC 4343).
        if (got.name, got.rdtype, got.rdclass) != (asked.name, asked.rdtype, asked.rdclass):
            return f"question {_describe(got)}, expected {_describe(asked)}"
        return None

    def result(self, query_id: int) -> dns.message.Message | bytes | None:
        """The response to ``query_id`` if it has come (then forgotten), else None.

        For a query sent with :meth:`send_question` the response is its validated wire
        format, ``bytes`` (with the ID as on the wire; wrap it in a :class:`Response`,
        which parses it only when asked); for one sent with :meth:`send_query` it is the
        parsed :class:`dns.message.Message`. Raises the query's error if it failed
        (:class:`ProtocolError`, :class:`ConnectionLost`); raises ``KeyError`` for an ID
        never sent or already collected, which is a bug in the caller.
        """
        outcome = self._results.pop(query_id, None)
        if outcome is None:
            if query_id in self._pending:
                return None
            raise KeyError(query_id)
        self._reserved.discard(query_id)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
