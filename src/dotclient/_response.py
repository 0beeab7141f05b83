"""The result of a query: the dnspython message plus what the connection told us."""

from __future__ import annotations

import dataclasses

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ._exceptions import RcodeError
from ._server import Server
from ._tls import TLSInfo

__all__ = ["Response"]

# A CNAME chain longer than this is treated as a loop (BIND and Unbound use 8-16).
_MAX_CNAME_CHAIN = 16


@dataclasses.dataclass(frozen=True, eq=False)
class Response:
    """A DNS response received over TLS.

    ``message`` is the full :class:`dns.message.Message`. A non-NOERROR RCODE is not an
    exception: check :attr:`rcode` or call :meth:`raise_for_rcode`.
    """

    #: The parsed response, as dnspython gives it.
    message: dns.message.Message
    #: The server that answered.
    server: Server
    #: Seconds from the call to the answer, connection set-up included.
    elapsed: float
    #: What the TLS handshake negotiated and whether the server was authenticated.
    tls: TLSInfo

    @property
    def rcode(self) -> dns.rcode.Rcode:
        """The response code, e.g. ``Rcode.NOERROR`` or ``Rcode.NXDOMAIN``."""
        return self.message.rcode()

    @property
    def answer(self) -> list[dns.rrset.RRset]:
        """The answer section (all RRsets, CNAMEs included)."""
        return self.message.answer

    @property
    def question(self) -> tuple[dns.name.Name, dns.rdatatype.RdataType] | None:
        """The (name, type) asked, or None for a question-less error response."""
        if not self.message.question:
            return None
        q = self.message.question[0]
        return q.name, q.rdtype

    @property
    def rrset(self) -> dns.rrset.RRset | None:
        """The answer RRset for the question, following CNAMEs; None if there is none."""
        if not self.message.question:
            return None
        q = self.message.question[0]
        name = q.name
        for _ in range(_MAX_CNAME_CHAIN):
            for rrset in self.message.answer:
                if rrset.name == name and rrset.rdclass == q.rdclass and rrset.rdtype == q.rdtype:
                    return rrset
            cname = next(
                (
                    rrset
                    for rrset in self.message.answer
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
        return self.tls.authenticated

    @property
    def tls_version(self) -> str:
        """The negotiated protocol, e.g. ``"TLSv1.3"``."""
        return self.tls.version

    def raise_for_rcode(self) -> Response:
        """Raise :class:`RcodeError` unless the RCODE is NOERROR; return self otherwise."""
        rcode = self.rcode
        if rcode != dns.rcode.NOERROR:
            what = self.question
            asked = f"{what[0]} {dns.rdatatype.to_text(what[1])}" if what else "query"
            raise RcodeError(
                f"{asked}: {dns.rcode.to_text(rcode)} from {self.server}",
                server=self.server,
                response=self,
            )
        return self

    def __repr__(self) -> str:
        what = self.question
        asked = f"{what[0]} {dns.rdatatype.to_text(what[1])}" if what else "?"
        return (
            f"<Response {asked} {dns.rcode.to_text(self.rcode)} from {self.server} "
            f"{self.elapsed * 1000:.1f} ms {self.tls.version}"
            f"{'' if self.authenticated else ' UNAUTHENTICATED'}>"
        )
