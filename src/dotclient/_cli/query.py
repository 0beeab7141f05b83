"""``dotclient query NAME [TYPE] [CLASS] [@SERVER]``: one lookup, shown as dig shows it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

import dotclient

from .common import (
    EXIT_OK,
    EXIT_RCODE,
    UsageError,
    add_server_options,
    add_tls_options,
    cli_message,
    client_options,
    describe,
    exit_code,
    hints,
    server_specs,
)

DESCRIPTION = """\
Look names up over DNS over TLS and print the answers as dig does, or as JSON.
Words are read as dig reads them: a type or class may come before or after its name
(MX example.com, version.bind CH TXT), several names give several lookups, -x ADDR
looks up an address's PTR. With several servers (@A @B, --server, --servers A,B)
they are tried in order until one answers, within --timeout in all. Exit codes: 0
NOERROR, 1 another RCODE, 2 bad usage, 3 network failure or timeout, 4 TLS or
authentication failure, 5 protocol error (with several names, the highest); 141 when
standard output closes early."""

_OPTION_NAMES = {11: "KEEPALIVE", 12: "PADDING"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """query's command line: dig-like words, the server and TLS options, its own."""
    parser.add_argument(
        "words",
        nargs="*",
        metavar="NAME [TYPE] [CLASS] [@SERVER]",
        help="names, each with optionally a type (default A) and a class (default IN), "
        "before or after it; a word with a dot is a name, another one is a type or class "
        "if it names one (write a one-label name with a final dot: 'localhost.'); "
        "@SERVER words name servers, in any position",
    )
    parser.add_argument(
        "-x",
        dest="reverse",
        action="append",
        default=[],
        metavar="ADDR",
        help="reverse lookup: the PTR record of this IPv4 or IPv6 address (repeatable)",
    )
    add_server_options(parser)
    add_tls_options(parser)
    group = parser.add_argument_group("query")
    group.add_argument("--dnssec", action="store_true", help="set the DO bit; show the AD bit")
    group.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (a list of them for several names); errors too",
    )
    group.add_argument(
        "--short",
        action="store_true",
        help="print only the data of the answer's records (CNAMEs too)",
    )


@dataclass
class Lookup:
    """One question of the command line."""

    name: str | None = None
    rdtype: str | None = None
    rdclass: str | None = None

    def question(self) -> tuple[str, str, str]:
        """Name, type and class, with the defaults A and IN."""
        assert self.name is not None
        return self.name, self.rdtype or "A", self.rdclass or "IN"


def _kind(word: str) -> str:
    """``type``, ``class`` or ``name``: a word with a dot is always a name; another is a
    type or a class when it is the name of one (dig's rule), types first (ANY)."""
    if "." not in word:
        try:
            dns.rdatatype.from_text(word)
            return "type"
        except Exception:  # dnspython raises several types for bad text
            pass
        try:
            dns.rdataclass.from_text(word)
            return "class"
        except Exception:
            pass
    return "name"


def _split_words(words: list[str], reverse: list[str]) -> tuple[list[Lookup], list[str]]:
    """The lookups and ``@SERVER`` words, as dig reads them: ``NAME [TYPE] [CLASS]`` in
    any order (``MX example.com``, ``version.bind CH TXT``), several names, and ``-x``
    addresses (PTR lookups of their reverse names)."""
    servers = [w[1:] for w in words if w.startswith("@")]
    if any(not s for s in servers):
        raise UsageError("'@' must be followed by a server")
    lookups: list[Lookup] = []
    for address in reverse:
        try:
            name = dns.reversename.from_address(address).to_text()
        except (ValueError, dns.exception.SyntaxError):
            raise UsageError(f"-x {address!r}: not an IPv4 or IPv6 address") from None
        lookups.append(Lookup(name, "PTR"))
    current = Lookup()
    for word in (w for w in words if not w.startswith("@")):
        kind = _kind(word)
        if kind == "name":
            if current.name is not None:
                if "." not in word:
                    raise UsageError(
                        f"unknown record type {word!r} (a second name? write it with a "
                        f"dot: {word + '.'!r})"
                    )
                lookups.append(current)
                current = Lookup()
            current.name = word
            continue
        field = "rdtype" if kind == "type" else "rdclass"
        if getattr(current, field) is not None:
            if current.name is None:
                raise UsageError(
                    f"two record {kind}s before a name: {getattr(current, field)} and {word}"
                )
            lookups.append(current)  # a type or class for the next name
            current = Lookup()
        setattr(current, field, word.upper())
    if current.name is not None:
        lookups.append(current)
    elif current.rdtype or current.rdclass:
        given = " ".join(w for w in (current.rdtype, current.rdclass) if w)
        raise UsageError(f"{given} is not followed by a name to look up")
    if not lookups:
        raise UsageError("no name to look up")
    for lookup in lookups:
        try:
            dns.name.from_text(lookup.question()[0])
        except dns.exception.DNSException as exc:
            raise UsageError(f"{lookup.name!r} is not a domain name: {exc}") from None
    return lookups, servers


def run(args: argparse.Namespace) -> int:
    """Look every name up and print the answers; the highest exit code of them."""
    if args.json and args.short:
        raise UsageError("--json and --short do not mix: give one of them")
    lookups, at_servers = _split_words(args.words, args.reverse)
    specs = server_specs(args, at_servers)
    options = client_options(args)
    if len(specs) > 1:
        options["servers"] = specs
    try:
        client = dotclient.Client(None if len(specs) > 1 else specs[0], **options)
    except ValueError as exc:  # a bad ca_file or option: before I/O
        raise UsageError(cli_message(str(exc))) from None
    codes: list[int] = []
    documents: list[dict[str, Any]] = []
    with client:
        for number, lookup in enumerate(lookups):
            if number and not args.json and not args.short:
                print()
            code, document = _lookup(args, client, lookup)
            codes.append(code)
            if document is not None:
                documents.append(document)
    if args.json:
        print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    return max(codes)


def _lookup(
    args: argparse.Namespace, client: dotclient.Client, lookup: Lookup
) -> tuple[int, dict[str, Any] | None]:
    """Resolve one lookup and print it (text), or return its JSON document."""
    name, rdtype, rdclass = lookup.question()
    before = {id(state.last_error) for state in client.stats.servers}
    response: dotclient.Response | None = None
    failures: list[tuple[str, BaseException]]
    try:
        response = client.resolve(name, rdtype, rdclass, dnssec=args.dnssec)
    except ValueError as exc:  # a name the library refuses
        raise UsageError(str(exc)) from None
    except dotclient.AllServersFailed as exc:
        failures = [(str(server), error) for server, error in exc.errors]
    except dotclient.DoTError as exc:
        failures = [(str(client.server), exc)]
    else:  # the servers that failed before one answered (in this lookup)
        failures = [
            (str(state.server), state.last_error)
            for state in client.stats.servers
            if state.last_error is not None and id(state.last_error) not in before
        ]
    if not args.json:
        for server, error in failures:
            print(f";; {server}: {describe(error)}", file=sys.stderr)
        for hint in hints(error for _, error in failures):
            print(f";; hint: {hint}", file=sys.stderr)
    failed = [{"server": s, "error": describe(e)} for s, e in failures]
    if response is not None:
        document = None
        if args.json:
            document = to_json(response, args.dnssec)
            document["failed"] = failed
        elif args.short:
            for line in short_lines(response):
                print(line)
        else:
            print(to_text(response, name, rdtype, args.dnssec), end="")
        return (EXIT_OK if response.rcode == dns.rcode.NOERROR else EXIT_RCODE), document
    last = failures[-1][1]
    if args.json:
        document = {"question": {"name": name, "type": rdtype, "class": rdclass}}
        document.update(error=describe(last), failed=failed, exit_code=exit_code(last))
        return exit_code(last), document
    if len(failures) > 1:
        print(f";; no server answered ({len(failures)} tried)", file=sys.stderr)
    return exit_code(last), None


def short_lines(response: dotclient.Response) -> list[str]:
    """The data of every record in the answer section, in order, as kdig's and dig's
    ``+short`` print it: the CNAME chain's targets too, and every type of an ANY."""
    return [rdata.to_text() for rrset in response.message.answer for rdata in rrset]


def _edns_lines(message: dns.message.Message) -> list[str]:
    if message.edns < 0:
        return []
    flags = dns.flags.edns_to_text(message.ednsflags).lower()
    lines = [
        ";; OPT PSEUDOSECTION:",
        f"; EDNS: version: {message.edns}, flags:{' ' + flags if flags else ''}; "
        f"udp: {message.payload}",
    ]
    for option in message.options:
        data = option.to_wire() or b""
        if option.otype == dns.edns.OptionType.PADDING:
            lines.append(f"; PADDING: {len(data)} octets")
        elif option.otype == dns.edns.OptionType.KEEPALIVE:
            if len(data) == 2:
                lines.append(f"; KEEPALIVE: {int.from_bytes(data, 'big') / 10:.1f} s")
            else:
                lines.append("; KEEPALIVE")
        else:
            lines.append(f"; {option.otype!s}: {option.to_text()}")
    return lines


def _section(title: str, rrsets: list[dns.rrset.RRset]) -> list[str]:
    if not rrsets:
        return []
    return [f";; {title} SECTION:"] + [rrset.to_text() for rrset in rrsets] + [""]


def to_text(response: dotclient.Response, name: str, rdtype: str, dnssec: bool) -> str:
    """dig's layout: header, flags, OPT, sections, then query time, server and TLS."""
    message = response.message
    flags = dns.flags.to_text(message.flags).lower()
    lines = [
        f"; <<>> dotclient {dotclient.__version__} <<>> {name} {rdtype} @{response.server}",
        f";; ->>HEADER<<- opcode: {dns.opcode.to_text(message.opcode())}, "
        f"status: {dns.rcode.to_text(response.rcode)}, id: {message.id}",
        f";; flags: {flags}; QUERY: {len(message.question)}, ANSWER: "
        f"{_count(message.answer)}, AUTHORITY: {_count(message.authority)}, "
        f"ADDITIONAL: {_count(message.additional) + (message.edns >= 0)}",
        "",
    ]
    edns = _edns_lines(message)
    if edns:
        lines += edns + [""]
    lines += [";; QUESTION SECTION:"]
    lines += [f";{q.to_text()}" for q in message.question] + [""]
    lines += _section("ANSWER", message.answer)
    lines += _section("AUTHORITY", message.authority)
    lines += _section("ADDITIONAL", message.additional)
    tls = response.tls
    resumed = ", resumed" if tls.resumed else ""
    lines += [
        f";; Query time: {response.elapsed * 1000:.1f} ms",
        f";; SERVER: {response.server} ({tls.version}, {tls.cipher}{resumed})",
        f";; AUTHENTICATED: {_authenticated(tls)}",
    ]
    if dnssec:
        ad = "yes" if message.flags & dns.flags.AD else "no"
        lines.append(f";; DNSSEC: DO set, AD {ad} (AD: the resolver validated the answer)")
    lines += [f";; MSG SIZE  rcvd: {len(response.wire)}", ""]
    return "\n".join(lines) + "\n"


def _count(rrsets: list[dns.rrset.RRset]) -> int:
    return sum(len(rrset) for rrset in rrsets)


def _authenticated(tls: dotclient.TLSInfo) -> str:
    return "yes" if tls.authenticated else f"no ({tls.auth_error})"


def _records(rrsets: list[dns.rrset.RRset]) -> list[dict[str, Any]]:
    return [
        {
            "name": rrset.name.to_text(),
            "ttl": rrset.ttl,
            "class": dns.rdataclass.to_text(rrset.rdclass),
            "type": dns.rdatatype.to_text(rrset.rdtype),
            "data": rdata.to_text(),
        }
        for rrset in rrsets
        for rdata in rrset
    ]


def to_json(response: dotclient.Response, dnssec: bool) -> dict[str, Any]:
    """The ``--json`` document of one answer."""
    message = response.message
    tls = response.tls
    question = message.question[0] if message.question else None
    options = []
    for option in message.options if message.edns >= 0 else []:
        data = option.to_wire() or b""
        entry: dict[str, Any] = {
            "code": int(option.otype),
            "name": _OPTION_NAMES.get(int(option.otype), str(option.otype)),
            "length": len(data),
        }
        if option.otype == dns.edns.OptionType.KEEPALIVE and len(data) == 2:
            entry["timeout"] = int.from_bytes(data, "big") / 10
        options.append(entry)
    return {
        "question": None
        if question is None
        else {
            "name": question.name.to_text(),
            "type": dns.rdatatype.to_text(question.rdtype),
            "class": dns.rdataclass.to_text(question.rdclass),
        },
        "rcode": dns.rcode.to_text(response.rcode),
        "id": message.id,
        "flags": dns.flags.to_text(message.flags).split(),
        "ad": bool(message.flags & dns.flags.AD),
        "dnssec": dnssec,
        "answer": _records(message.answer),
        "authority": _records(message.authority),
        "additional": _records(message.additional),
        "edns": None
        if message.edns < 0
        else {
            "version": message.edns,
            "flags": dns.flags.edns_to_text(message.ednsflags).split(),
            "payload": message.payload,
            "options": options,
        },
        "size": len(response.wire),
        "elapsed_ms": round(response.elapsed * 1000, 3),
        "server": str(response.server),
        "tls": {
            "version": tls.version,
            "cipher": tls.cipher,
            "alpn": tls.alpn,
            "authenticated": tls.authenticated,
            "auth_error": tls.auth_error,
            "resumed": tls.resumed,
            "pins": list(tls.pins),
        },
    }
