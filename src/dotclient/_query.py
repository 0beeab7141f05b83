"""Building queries: questions checked once, messages rendered with padding and
keepalive, and the lean path's templates.

:func:`make_query` and :func:`render_query` are the full path (any dnspython message);
``TEMPLATES`` holds the common shape (a recursive question with EDNS(0), payload
1232, padding) rendered once into a :class:`Template`, shared by every connection, so a
lean query is the template's bytes behind a fresh ID. The bytes are exactly those
:func:`make_query` and :func:`render_query` would produce (tested).
"""

from __future__ import annotations

import copy
import struct

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ._framing import MAX_MESSAGE
from ._wire import _KEEPALIVE, _OPT, _PADDING, _U16U16

__all__ = [
    "DEFAULT_PADDING_BLOCK",
    "MAX_PADDING_BLOCK",
    "Template",
    "check_question",
    "make_query",
    "TEMPLATES",
    "TemplateKey",
    "add_template",
    "render_query",
]

#: RFC 8467 section 4.1: clients pad queries to the closest multiple of 128 octets.
DEFAULT_PADDING_BLOCK = 128
#: The largest padding block accepted (RFC 8467 suggests 128 for queries).
MAX_PADDING_BLOCK = 512
_EDNS_PAYLOAD = 1232  # what make_query asks for (the DNS Flag Day 2020 value)


_CheckedQuestion = tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass]
# Questions asked as strings, parsed: dns.name.from_text is the dearest step of sending a
# query. Keyed by the exact str and the type and class as given (exact types only, so
# that 1.0 or True never stand for 1); emptied when full, like TEMPLATES.
_QUESTIONS: dict[tuple[str, object, object], _CheckedQuestion] = {}
_MAX_QUESTIONS = 4096
_CACHEABLE = frozenset({str, int, dns.rdatatype.RdataType, dns.rdataclass.RdataClass})
# The longest text a DNS name can have: 255 octets on the wire, each at most 4
# characters (\DDD) in text.
_MAX_NAME_TEXT = 4 * 255


def check_question(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int,
    rdclass: dns.rdataclass.RdataClass | str | int,
) -> _CheckedQuestion:
    """Parse a question's name, type and class; raise ``ValueError`` for bad ones
    (unknown mnemonics, names too long, meta-types other than ANY) and ``TypeError``
    for a type or class that is neither a str nor an int."""
    if type(qname) is str and type(rdtype) in _CACHEABLE and type(rdclass) in _CACHEABLE:
        key = (qname, rdtype, rdclass)
        checked = _QUESTIONS.get(key)
        if checked is None:
            checked = _check_question(qname, rdtype, rdclass)
            if len(_QUESTIONS) >= _MAX_QUESTIONS:
                _QUESTIONS.clear()
            _QUESTIONS[key] = checked
        return checked
    return _check_question(qname, rdtype, rdclass)


def _check_question(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int,
    rdclass: dns.rdataclass.RdataClass | str | int,
) -> _CheckedQuestion:
    for what, value in (("rdtype", rdtype), ("rdclass", rdclass)):
        if isinstance(value, bool) or not isinstance(value, (str, int)):  # True is not A
            raise TypeError(f"{what} must be a str or an int, not {value!r}")
    if isinstance(qname, str) and len(qname) > _MAX_NAME_TEXT:  # before parsing it
        raise ValueError(f"invalid query: a name of {len(qname)} characters is too long")
    try:
        if isinstance(qname, str):
            qname = dns.name.from_text(qname)
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        rdclass = dns.rdataclass.RdataClass.make(rdclass)
    except dns.exception.DNSException as exc:
        raise ValueError(f"invalid query: {exc}") from exc
    if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
        raise ValueError(f"cannot query for meta-type {rdtype.name}")
    return qname, rdtype, rdclass


def make_query(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int = dns.rdatatype.A,
    rdclass: dns.rdataclass.RdataClass | str | int = dns.rdataclass.IN,
    *,
    dnssec: bool = False,
    padding: int = 0,
) -> dns.message.QueryMessage:
    """Build a recursive query with EDNS(0), the way a stub resolver asks.

    ``dnssec=True`` sets the DO bit (RFC 3225); ``padding`` > 0 pads it to that block
    size when rendered (RFC 8467). Bad names or types raise ``ValueError``.
    """
    qname, rdtype, rdclass = check_question(qname, rdtype, rdclass)
    return dns.message.make_query(
        qname, rdtype, rdclass, use_edns=0, want_dnssec=dnssec, payload=1232, pad=padding
    )


def render_query(
    message: dns.message.Message, query_id: int, padding: int, *, keepalive: bool = False
) -> bytes:
    """Render ``message`` to wire format with ``query_id``, leaving the caller's object
    untouched. With ``padding`` > 0, add an EDNS(0) Padding option (RFC 7830) so the
    message length is a multiple of ``padding`` (RFC 8467 block-length padding). With
    ``keepalive``, add an empty edns-tcp-keepalive option (RFC 7828 section 3.1) unless
    the message has one; it comes before the padding option. A keepalive option of the
    caller's is sent empty: RFC 7828 section 3.2.1 has clients send no TIMEOUT."""
    return render_with_mac(message, query_id, padding, keepalive)[0]


def render_with_mac(
    message: dns.message.Message, query_id: int, padding: int, keepalive: bool = False
) -> tuple[bytes, bytes | None]:
    """:func:`render_query`, and the MAC of the query's TSIG if it is signed (else None),
    which the response's TSIG is checked against (RFC 8945)."""
    msg = copy.copy(message)
    msg.id = query_id
    if msg.tsig is not None:
        # to_wire() rewrites the TSIG RRset in place; keep the caller's intact.
        msg.tsig = copy.copy(msg.tsig)
    options = list(msg.options) if msg.edns >= 0 else []
    # RFC 7828 section 3.2.1: a client MUST send the option with length 0, no TIMEOUT.
    strip = any(o.otype == _KEEPALIVE and o.to_wire() for o in options)
    if strip:
        options = [
            dns.edns.GenericOption(_KEEPALIVE, b"") if o.otype == _KEEPALIVE else o
            for o in options
        ]
    add_keepalive = keepalive and not any(o.otype == _KEEPALIVE for o in options)
    if add_keepalive:
        options.append(dns.edns.GenericOption(_KEEPALIVE, b""))
    repad = bool(padding) and (
        msg.edns < 0
        or msg.pad != padding
        or any(o.otype == dns.edns.OptionType.PADDING for o in options)
    )
    if repad:
        options = [o for o in options if o.otype != dns.edns.OptionType.PADDING]
    if add_keepalive or repad or strip:
        pad = padding or msg.pad
        if msg.edns < 0:
            msg.use_edns(0, options=options, pad=pad)
        else:
            msg.use_edns(msg.edns, msg.ednsflags, msg.payload, options=options, pad=pad)
    try:
        # Over TCP and TLS only the length prefix limits a message (RFC 1035 4.2.2).
        # By default dnspython stops at the EDNS payload size, which is about answers
        # over UDP (RFC 6891 section 6.2.3), so adding EDNS for padding or keepalive made
        # queries of more than 1232 octets fail that went out without it.
        wire = msg.to_wire(max_size=MAX_MESSAGE)
    except dns.exception.DNSException as exc:
        raise ValueError(f"cannot render query: {exc}") from exc
    # A TSIG-signed query: the response's TSIG is checked against this MAC (RFC 8945).
    return wire, getattr(msg, "mac", None) if msg.keyring is not None else None


class Template:
    """One query shape rendered once: everything but the ID, and what its answer must
    echo. Shared (read-only) by every query of that shape, and filed as its pending."""

    __slots__ = ("length", "qname", "qname_lower", "rdclass", "rdtype", "tail", "typeclass")

    def __init__(
        self,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdclass: dns.rdataclass.RdataClass,
        name: bytes,
        tail: bytes,
    ) -> None:
        self.qname = qname
        self.rdtype = rdtype
        self.rdclass = rdclass
        #: The message after its 2-octet ID.
        self.tail = tail
        #: The message length, ID included.
        self.length = 2 + len(tail)
        # ASCII-only lower case, as dns.name compares (RFC 4343). Length octets are < 64
        # and so unchanged, while any octet >= 64 stays >= 64: a lowered response name
        # equals this only if its length octets are exactly ours.
        self.qname_lower = name.lower()
        self.typeclass = _U16U16.pack(rdtype, rdclass)

    def question(self) -> dns.rrset.RRset:
        """The question asked, as dnspython's RRset (for the full check of an answer)."""
        return dns.rrset.RRset(self.qname, self.rdclass, self.rdtype)


def _template(
    qname: dns.name.Name,
    rdtype: int,
    rdclass: int,
    dnssec: bool,
    padding: int,
    keepalive: bool,
) -> Template:
    """Render what make_query(...) + render_query(...) would, without dnspython's renderer:
    header (RD, one question, one additional), question, then the OPT RR with payload
    1232, the DO bit if ``dnssec`` (RFC 3225), an empty keepalive option if asked (RFC
    7828) and a padding option filling the message to a multiple of ``padding`` (RFC
    8467; none when 0)."""
    if not qname.is_absolute():
        raise ValueError(f"invalid query: the name {qname} is not absolute")
    try:
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        rdclass = dns.rdataclass.RdataClass.make(rdclass)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"invalid query: {exc}") from exc
    if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
        raise ValueError(f"cannot query for meta-type {rdtype.name}")
    # ID follows; flags RD; QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1.
    header = struct.pack("!HHHHH", dns.flags.RD, 1, 0, 0, 1)
    name = b"".join(bytes((len(label),)) + label for label in qname.labels)  # uncompressed
    question = name + _U16U16.pack(rdtype, rdclass)
    options = _U16U16.pack(_KEEPALIVE, 0) if keepalive else b""
    if padding:
        # 2 (ID) + header + question + OPT RR fixed part (11) + options + padding header (4)
        unpadded = 2 + len(header) + len(question) + 11 + len(options) + 4
        fill = -unpadded % padding
        options += _U16U16.pack(_PADDING, fill) + bytes(fill)
    ttl = dns.flags.DO if dnssec else 0  # extended RCODE 0, version 0, flags
    opt = b"\x00" + struct.pack("!HHIH", _OPT, _EDNS_PAYLOAD, ttl, len(options)) + options
    return Template(qname, rdtype, rdclass, name, header + question + opt)


#: A template's key: the name's labels, type, class, DO bit, padding block, keepalive.
#: Labels, not the Name: Name hashes in Python and compares case-insensitively, while
#: the bytes keep the case given.
TemplateKey = tuple[tuple[bytes, ...], int, int, bool, int, bool]


#: The query templates, shared by every connection: read with ``TEMPLATES.get(key)``
#: (a plain dict lookup, once per lean query) and filled by :func:`add_template`.
TEMPLATES: dict[TemplateKey, Template] = {}
_MAX_TEMPLATES = 4096


def add_template(key: TemplateKey, qname: dns.name.Name) -> Template:
    """Render the query shape ``key`` (``qname`` is the name of its labels) into
    :data:`TEMPLATES` (emptied first when it holds 4,096) and return it. Bad names or
    types raise ``ValueError``."""
    _, rdtype, rdclass, dnssec, padding, keepalive = key
    template = _template(qname, rdtype, rdclass, dnssec, padding, keepalive)
    if len(TEMPLATES) >= _MAX_TEMPLATES:
        TEMPLATES.clear()
    TEMPLATES[key] = template
    return template
