"""dnspython's RDATA class cache cannot be poisoned by one record of class ANY.

In a fresh interpreter (the cache is per process), a response carrying an AAAA record
of class ANY is parsed first, then an ordinary one: its parsed records must be AAAA
records. Before ``dotclient._rdata_pins`` the second parse gave GenericRdata, and
reading ``.address`` raised AttributeError (found by the Hypothesis tests of the lean
reader, whose examples met class ANY before class IN with some seeds).
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import dns.message, dns.rrset
import dotclient
from dotclient._tls import TLSInfo

def wire(rdclass):
    query = dns.message.make_query("a.example.test", "AAAA")
    reply = dns.message.make_response(query)
    reply.answer.append(
        dns.rrset.from_text(
            "a.example.test.", 60, rdclass, "TYPE28", r"\# 16 20010db8" + "0" * 23 + "1"
        )
    )
    return reply.to_wire()

server = dotclient.Server("127.0.0.1")
tls = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", None, True, None, ())
dotclient.Response(wire("ANY"), server, 0.0, tls).message  # class ANY first
answer = dotclient.Response(wire("IN"), server, 0.0, tls).message.answer[0]
print([rdata.address for rdata in answer])  # the message, not the lean reader
"""


def test_a_record_of_class_any_does_not_make_later_ones_generic() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['2001:db8::1']"
