"""What tests check dotclient against, written here apart from dotclient's own code."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

#: The EDNS(0) edns-tcp-keepalive option code (RFC 7828 section 3.1).
KEEPALIVE = 11


def spki_pin(der: bytes) -> str:
    """The SPKI pin of a DER certificate: base64 of the SHA-256 of its
    SubjectPublicKeyInfo (RFC 7469 section 2.4)."""
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()
