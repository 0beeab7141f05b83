"""The result of a query: the dnspython message plus what the connection told us."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ._exceptions import ProtocolError, RcodeError
from ._protocol import wire_summary
from ._server import Server
from ._tls import TLSInfo

__all__ = ["Response"]

# A CNAME chain longer than this is treated as a loop (BIND and Unbound use 8-16).
_MAX_CNAME_CHAIN = 16
_Question = tuple[dns.name.Name, dns.rdatatype.RdataType]
_UNKNOWN: Any = object()


class Response:
    """A DNS response received over TLS.

    ``message`` is the full :class:`dns.message.Message`. Built from the received bytes
    (as the clients do), the message is parsed only when first needed: :attr:`rcode`,
    :attr:`question`, :meth:`raise_for_rcode` and ``repr()`` read the bytes, while
    :attr:`message`, :attr:`answer`, :attr:`rrset` and :meth:`addresses` parse. A
    non-NOERROR RCODE is not an exception: check :attr:`rcode` or call
    :meth:`raise_for_rcode`. Responses are immutable.
    """

    __slots__ = ("_elapsed", "_message", "_question", "_rcode", "_server", "_tls", "_wire")

    _elapsed: float
    _message: dns.message.Message | None
    _question: _Question | None
    _rcode: dns.rcode.Rcode
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
        else:
            init(self, "_message", None)
            init(self, "_wire", bytes(message))
        init(self, "_server", server)
        init(self, "_elapsed", elapsed)
        init(self, "_tls", tls)
        init(self, "_rcode", _UNKNOWN)
        init(self, "_question", _UNKNOWN)

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

    def _summarize(self) -> None:
        # Only for a Response built from bytes; a message is asked each time.
        assert self._wire is not None
        summary = wire_summary(self._wire)
        if summary is None:  # not certain from the bytes alone: parse
            message = self.message
            q = message.question[0] if message.question else None
            summary = (message.rcode(), (q.name, q.rdtype) if q is not None else None)
        object.__setattr__(self, "_rcode", dns.rcode.Rcode.make(summary[0]))
        object.__setattr__(self, "_question", summary[1])

    @property
    def rcode(self) -> dns.rcode.Rcode:
        """The response code, e.g. ``Rcode.NOERROR`` or ``Rcode.NXDOMAIN`` (with the
        EDNS extended bits, RFC 6891 section 6.1.3)."""
        if self._wire is None:
            assert self._message is not None
            return self._message.rcode()
        if self._rcode is _UNKNOWN:
            self._summarize()
        return self._rcode

    @property
    def answer(self) -> list[dns.rrset.RRset]:
        """The answer section (all RRsets, CNAMEs included)."""
        return self.message.answer

    @property
    def question(self) -> tuple[dns.name.Name, dns.rdatatype.RdataType] | None:
        """The (name, type) asked, or None for a question-less error response."""
        if self._wire is None:
            assert self._message is not None
            if not self._message.question:
                return None
            q = self._message.question[0]
            return q.name, q.rdtype
        if self._question is _UNKNOWN:
            self._summarize()
        return self._question

    @property
    def rrset(self) -> dns.rrset.RRset | None:
        """The answer RRset for the question, following CNAMEs; None if there is none."""
        message = self.message
        if not message.question:
            return None
        q = message.question[0]
        name = q.name
        for _ in range(_MAX_CNAME_CHAIN):
            for rrset in message.answer:
                if rrset.name == name and rrset.rdclass == q.rdclass and rrset.rdtype == q.rdtype:
                    return rrset
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
                return None
            name = cname[0].target
        return None

    def addresses(self) -> list[str]:
        """The A and AAAA addresses answering the question, as strings, in answer order
        (CNAMEs followed). Empty when the question was for another type."""
        rrset = self.rrset
        if rrset is None or rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return []
        return [rdata.address for rdata in rrset]

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
