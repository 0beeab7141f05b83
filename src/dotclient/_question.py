"""What a caller asks, checked before any I/O: a question for ``resolve()`` or a
dnspython message for ``query()``."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from ._protocol import check_question

__all__ = ["Question", "check_message", "make_question"]

#: A checked question: name, type, class and whether to set the DO bit.
Question = tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass, bool]


def make_question(
    name: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int,
    rdclass: dns.rdataclass.RdataClass | str | int,
    dnssec: bool,
) -> Question:
    """Check what ``resolve()`` was asked, before any I/O."""
    if not isinstance(name, (str, dns.name.Name)):
        raise TypeError(f"name must be a str or dns.name.Name, not {type(name).__name__}")
    if not isinstance(dnssec, bool):  # "no" would set the DO bit
        raise TypeError(f"dnssec must be True or False, not {dnssec!r}")
    return (*check_question(name, rdtype, rdclass), dnssec)


def check_message(message: object) -> dns.message.Message:
    """Refuse anything but a dnspython query message, before any I/O."""
    if not isinstance(message, dns.message.Message):
        raise TypeError(f"query needs a dns.message.Message, not {type(message).__name__}")
    if len(message.question) != 1:
        raise ValueError(f"a query needs exactly one question, not {len(message.question)}")
    if message.flags & dns.flags.QR:
        raise ValueError("the message has the QR flag set: it is a response, not a query")
    return message
