"""What ``dotclient probe`` found: the findings, the report, and the table showing them.

The steps (:mod:`.probe_transport`, :mod:`.probe_client`) add findings to one
:class:`Probe`; :mod:`.probe` turns them into a verdict and prints this report.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from typing import Any

import dotclient

from .common import is_terminal


@dataclass
class Check:
    """One finding: a row of the table and a verdict contribution."""

    label: str
    value: str
    level: str = "ok"  # ok, info, warn, fail


@dataclass
class Probe:
    """What the probe was asked, and what it found so far (``report`` is the JSON)."""

    server: dotclient.Server
    name: str
    rdtype: str
    timeout: float
    options: dict[str, Any]
    expiry_warning: datetime.timedelta = datetime.timedelta(days=14)
    report: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    failure: BaseException | None = None

    def add(self, label: str, value: str, level: str = "ok") -> None:
        """Record a finding (``level``: ok, info, warn or fail)."""
        self.checks.append(Check(label, value, level))


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to the hundredth: the report's unit for timings."""
    return round(seconds * 1000, 2)


_STYLES = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "bold red"}
_VERDICT_STYLES = {"OK": "bold green", "WARN": "bold yellow", "FAIL": "bold red"}
_MARKS = {"ok": "✓", "info": "·", "warn": "!", "fail": "✗"}


def show(probe: Probe, verdict: str, reason: str) -> None:
    """Print the verdict, the findings and the certificate chain as rich tables."""
    from rich.console import Console
    from rich.table import Table

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError  # rich would exit 1, the code of a WARN verdict

    console = _Console(file=sys.stdout, width=None if is_terminal(sys.stdout) else 110)
    console.print(
        f"[{_VERDICT_STYLES[verdict]}]{verdict}[/] {probe.server}: {reason}", highlight=False
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("check", style="bold")
    table.add_column("", no_wrap=True)
    table.add_column("result", overflow="fold")
    for check in probe.checks:
        style = _STYLES[check.level]
        table.add_row(check.label, f"[{style}]{_MARKS[check.level]}[/]", check.value)
    console.print(table)
    chain = probe.report.get("certificates") or []
    if chain:
        console.print(_chain_table(chain))


def _chain_table(chain: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    certs = Table(title="certificate chain (leaf first)", title_justify="left")
    certs.add_column("#")
    certs.add_column("subject / issuer / SANs", overflow="fold")
    certs.add_column("expires")
    certs.add_column("SPKI pin (for --pin)", no_wrap=True)
    for index, cert in enumerate(chain):
        names = ", ".join(cert["sans"]) or "-"
        certs.add_row(
            str(index),
            f"{cert['subject']}\nissuer: {cert['issuer']}\nSANs: {names}",
            f"{cert['not_after'][:10]}\n({cert['days_left']} days)",
            cert["pin"],
        )
    return certs
