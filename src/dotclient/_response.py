"""The result of a query: the answer users read, the dnspython message, and what the
connection told us."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from . import _rdata_pins  # noqa: F401  (before any parse: see the module)
from ._answer import MAX_CNAME_CHAIN, WireAnswer, read_wire
from ._exceptions import ProtocolError, RcodeError
from ._server import Server
from ._tls import TLSInfo
from ._wire import last_opt, wire_summary

__all__ = ["Response", "make_response"]


class Response:
    """A DNS response received over TLS.

    ``message`` is the full :class:`dns.message.Message`. Built from the received bytes
    (as the clients do), a response decodes what users read from the bytes themselves:
    :attr:`rcode`, :attr:`flags`, :attr:`question`, :attr:`answer`, :attr:`rrset`,
    :meth:`addresses` and :attr:`ttl` give exactly what they would give from
    ``message``, without building it, for answers made of the common record types (A,
    AAAA, CNAME, DNAME, NS, PTR, MX, SRV, SOA, TXT). For any other message (DNSSEC
    records, more than one question, malformed bytes...) they read :attr:`message`,
    which is parsed on first use and then kept. A non-NOERROR RCODE is not an exception:
    check :attr:`rcode` or call :meth:`raise_for_rcode`. Responses are immutable.

    :attr:`rcode` and :attr:`question` (and so ``repr()`` and :meth:`raise_for_rcode`)
    never parse a structurally sound message, whatever its record types.
    """

    __slots__ = ("_answer", "_elapsed", "_lean", "_message", "_rcode", "_server", "_tls", "_wire")

    _answer: list[dns.rrset.RRset] | None

    _elapsed: float
    _lean: bool
    _rcode: dns.rcode.Rcode | None
    _message: dns.message.Message | None
    _server: Server
    _tls: TLSInfo
    _wire: bytes | None

    def __init__(
        self, message: dns.message.Message | bytes, server: Server, elapsed: float, tls: TLSInfo
    ) -> None:
        init = object.__setattr__
        if isinstance(message, dns.message.Message):
            init(self, "_message", message)
            init(self, "_wire", None)
            init(self, "_lean", False)
        else:
            init(self, "_message", None)
            init(self, "_wire", bytes(message))
            init(self, "_lean", True)
        init(self, "_answer", None)
        init(self, "_rcode", None)
        init(self, "_server", server)
        init(self, "_elapsed", elapsed)
        init(self, "_tls", tls)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Response is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Response is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        message = self._message if self._wire is None else self._wire
        return (Response, (message, self._server, self._elapsed, self._tls))

    @property
    def message(self) -> dns.message.Message:
        """The parsed response, as dnspython gives it (parsed on first use, then kept).

        Raises :class:`ProtocolError` if the received bytes do not parse, which cannot
        happen for a response the client validated."""
        message = self._message
        if message is None:
            assert self._wire is not None
            try:
                message = dns.message.from_wire(self._wire, one_rr_per_rrset=False)
            except Exception as exc:  # dnspython raises many types for bad input
                raise ProtocolError(
                    f"malformed response from {self._server}: {type(exc).__name__}: {exc}"
                ) from exc
            object.__setattr__(self, "_message", message)
        return message

    def _message_without_edns(self) -> dns.message.Message:
        """:attr:`message` as the server would have sent it for this query without EDNS
        (the OPT RR, with the padding of the encrypted hop, removed), for a caller whose
        own query had none (dnspython's resolver by default): parsing the OPT and its
        padding costs about a third of parsing a small answer. :attr:`message` itself
        where that cannot be done exactly."""
        wire = self._wire
        if wire is None or self._message is not None:
            return self.message
        opt = last_opt(wire)  # the bytes were checked on receipt: a light walk
        if opt is None or opt == len(wire) or wire[opt + 5]:  # none, or extended RCODE bits
            return self.message
        stripped = wire[:10] + ((wire[10] << 8 | wire[11]) - 1).to_bytes(2, "big") + wire[12:opt]
        return dns.message.from_wire(stripped, one_rr_per_rrset=False)

    def _view(self) -> WireAnswer | None:
        """The lean view of the bytes, or None where only the message can answer.

        Not kept: decoding again is a walk of a few hundred octets, while keeping the
        view would cost about a kilobyte per response held (10,000 in a batch)."""
        if not self._lean:
            return None
        assert self._wire is not None
        lean = read_wire(self._wire)
        if lean is None:
            object.__setattr__(self, "_lean", False)  # do not walk again
        return lean

    def _summary(self) -> tuple[int, tuple[dns.name.Name, dns.rdatatype.RdataType] | None] | None:
        # Where the lean view declines (DNSSEC records, say), the RCODE and question can
        # still be read from a structurally sound message without parsing its records.
        return None if self._wire is None else wire_summary(self._wire)

    @property
    def wire(self) -> bytes:
        """The response in wire format: the bytes received (ID included, as sent).

        For a Response built from a :class:`dns.message.Message`: the message's own
        ``wire`` (the bytes dnspython parsed it from, or last rendered it to), else
        ``message.to_wire()``."""
        wire = self._wire
        if wire is None:
            assert self._message is not None
            kept = self._message.wire
            wire = kept if isinstance(kept, bytes) else self._message.to_wire()
        return wire

    @property
    def server(self) -> Server:
        """The server that answered, as connected: for a server given by name, the
        address used (Happy Eyeballs' pick), with the name as its authentication name."""
        return self._server

    @property
    def elapsed(self) -> float:
        """Seconds from the call to the answer, connection set-up included."""
        return self._elapsed

    @property
    def tls(self) -> TLSInfo:
        """What the TLS handshake negotiated and whether the server was authenticated."""
        return self._tls

    @property
    def rcode(self) -> dns.rcode.Rcode:
        """The response code, e.g. ``Rcode.NOERROR`` or ``Rcode.NXDOMAIN`` (with the
        EDNS extended bits, RFC 6891 section 6.1.3)."""
        if self._wire is None:
            assert self._message is not None
            return self._message.rcode()
        rcode = self._rcode
        if rcode is None:  # read from the bytes once: callers often ask before reading
            lean = self._view()
            if lean is not None:
                rcode = lean.rcode
            else:
                summary = self._summary()
                rcode = dns.rcode.Rcode.make(summary[0]) if summary else self.message.rcode()
            object.__setattr__(self, "_rcode", rcode)
        return rcode

    @property
    def flags(self) -> dns.flags.Flag:
        """The header flags, e.g. ``Flag.QR | Flag.RD | Flag.RA`` (``message.flags``)."""
        lean = self._view()
        return dns.flags.Flag(self.message.flags) if lean is None else lean.flags

    @property
    def answer(self) -> list[dns.rrset.RRset]:
        """The answer section (all RRsets, CNAMEs included), as ``message.answer``."""
        if self._message is not None:
            return self._message.answer
        if self._answer is None:  # the same list each time, as message.answer is
            lean = self._view()
            if lean is None:
                return self.message.answer
            object.__setattr__(self, "_answer", lean.answer)
        assert self._answer is not None
        return self._answer

    @property
    def question(self) -> tuple[dns.name.Name, dns.rdatatype.RdataType] | None:
        """The (name, type) asked, or None for a question-less error response."""
        lean = self._view()
        if lean is not None:
            return lean.question
        summary = self._summary()
        if summary is not None:
            return summary[1]
        message = self.message
        if not message.question:
            return None
        q = message.question[0]
        return q.name, q.rdtype

    def _chain(self) -> tuple[dns.rrset.RRset | None, int | None]:
        """From the message: the RRset answering the question, CNAMEs followed, and
        the smallest TTL of the CNAME RRsets followed (None if none)."""
        message = self.message
        if not message.question:
            return None, None
        q = message.question[0]
        name = q.name
        ttl: int | None = None
        for _ in range(MAX_CNAME_CHAIN):
            for rrset in message.answer:
                if rrset.name == name and rrset.rdclass == q.rdclass and rrset.rdtype == q.rdtype:
                    return rrset, ttl
            cname = next(
                (
                    rrset
                    for rrset in message.answer
                    if rrset.name == name
                    and rrset.rdclass == q.rdclass
                    and rrset.rdtype == dns.rdatatype.CNAME
                ),
                None,
            )
            if cname is None:
                break
            ttl = cname.ttl if ttl is None else min(ttl, cname.ttl)
            name = cname[0].target
        return None, ttl

    @property
    def rrset(self) -> dns.rrset.RRset | None:
        """The answer RRset for the question, following CNAMEs (up to 16); None if
        there is none."""
        lean = self._view()
        return self._chain()[0] if lean is None else lean.rrset

    def addresses(self) -> list[str]:
        """The A and AAAA addresses answering the question, as strings, in answer order
        (CNAMEs followed). Empty when the question was for another type."""
        lean = self._view()
        if lean is not None:
            return lean.addresses()
        rrset = self._chain()[0]
        if rrset is None or rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return []
        return [rdata.address for rdata in rrset]

    @property
    def ttl(self) -> int | None:
        """How many seconds this answer may be cached, or None if it says nothing.

        For an answer (NOERROR with an RRset answering the question): the smallest TTL
        of that RRset and the CNAMEs followed to reach it. For a negative answer
        (NXDOMAIN, or NOERROR with no such RRset: NODATA): the negative-caching TTL of
        RFC 2308 section 5, the smaller of the authority section's SOA TTL and its
        MINIMUM field (and of the CNAMEs followed). None for other RCODEs, a response
        without a question, and a negative answer without an SOA (RFC 2308 section 5:
        such answers are not cached), such as a referral."""
        lean = self._view()
        if lean is not None:
            return lean.ttl
        rcode = self.rcode
        message = self.message
        if not message.question or rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        rrset, ttl = self._chain()
        if rrset is not None and rcode == dns.rcode.NOERROR:
            low = rrset.ttl
        else:
            rdclass = message.question[0].rdclass
            soa = next(
                (
                    r
                    for r in message.authority
                    if r.rdtype == dns.rdatatype.SOA and r.rdclass == rdclass
                ),
                None,
            )
            if soa is None:
                return None
            low = min(soa.ttl, soa[0].minimum)
        return low if ttl is None else min(ttl, low)

    @property
    def authenticated(self) -> bool:
        """True when the server was authenticated (always, in the strict profile)."""
        return self._tls.authenticated

    @property
    def tls_version(self) -> str:
        """The negotiated protocol, e.g. ``"TLSv1.3"``."""
        return self._tls.version

    @property
    def resumed(self) -> bool:
        """True when the connection's TLS handshake resumed an earlier session."""
        return self._tls.resumed

    def raise_for_rcode(self) -> Response:
        """Raise :class:`RcodeError` unless the RCODE is NOERROR; return self otherwise."""
        rcode = self.rcode
        if rcode != dns.rcode.NOERROR:
            what = self.question
            asked = f"{what[0]} {dns.rdatatype.to_text(what[1])}" if what else "query"
            raise RcodeError(
                f"{asked}: {dns.rcode.to_text(rcode)} from {self._server}",
                server=self._server,
                response=self,
            )
        return self

    def __repr__(self) -> str:
        what = self.question
        asked = f"{what[0]} {dns.rdatatype.to_text(what[1])}" if what else "?"
        return (
            f"<Response {asked} {dns.rcode.to_text(self.rcode)} from {self._server} "
            f"{self._elapsed * 1000:.1f} ms {self._tls.version}"
            f"{'' if self.authenticated else ' UNAUTHENTICATED'}>"
        )


def make_response(
    query: dns.message.Message | None,
    message: dns.message.Message | bytes,
    started: float,
    tls: TLSInfo,
    server: Server,
) -> Response:
    """Wrap a validated answer to a query that began at ``started``
    (``time.perf_counter()``). For a caller's message the wire ID was ours; give the
    caller's back so ``query.is_response(response.message)`` holds."""
    if isinstance(message, dns.message.Message) and query is not None:
        message.id = query.id
    return Response(message, server, time.perf_counter() - started, tls)
