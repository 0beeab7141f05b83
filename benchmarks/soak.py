#!/usr/bin/env python3
"""Soak: many concurrent queries while the DoT server is killed and restarted.

    python benchmarks/soak.py [--queries 100000] [--concurrency 200] [--threads N]
                              [--restarts 5] [--how alternate|kill|graceful]
                              [--servers 1] [--strategy failover|round_robin]
                              [--timeout 5] [--grace 2] [--seed S] [--max-seconds 900]
                              [--json FILE]

Starts Debian's unbound on 127.0.0.1 (dotclient.testing, one thread, the test zone plus
1,000 hosts with an address each) and sends ``--queries`` queries through ONE client
with its default options: an ``AsyncClient`` shared by ``--concurrency`` tasks, or with
``--threads N`` a blocking ``Client`` shared by N threads. Meanwhile the server is
stopped ``--restarts`` times, evenly spread over the queries, and started again on the
same port after a random downtime of 0.2 to 1.5 s: killed with SIGKILL (a crash),
stopped with SIGTERM (graceful), or alternately (the default, a kill first).

The schedule follows progress, not the clock: restart k is due when k+1 shares of the
queries have finished (and, after the first, a further half share since the previous
server came back), and the callers keep taking queries, past ``--queries`` if need be
(the names come round again), until every restart is done. So a restart always
happens with queries in flight, and a fast machine does the same work as a slow one.

With ``--servers N`` it starts N such servers (the same zone and CA, ports of their
own) and gives the one client all of them (``servers=[...]``, ``--strategy``); the
restarts go round them, restart k stopping server k % N, so with N >= 2 one server is
always up and no query should fail.

Each query's answer is checked against the zone (rcode, question, every answer RRset)
and its outcome is one of:

  answered   a Response with the right answer for its name
  failed     a dotclient.DoTError (counted by class, one message shown for each)
  wrong      a Response, but not the right answer for its name (must be 0)
  other      any other exception: a bug (must be 0)
  hung       not finished within --timeout + --grace, by the script's own watchdog,
             separate from dotclient's Timeout (must be 0)
  lost       started but never finished, with no outcome at all (must be 0)

It also reports the client's stats (with several servers: failovers, and each
server's responses and failures), each restart (which server, when, how, queries in
flight) and whether file descriptors, tasks, threads or unclosed objects
(ResourceWarning) leaked. The exit status is 0 only when wrong, other, hung and lost
are all 0 (with several servers, failed too), nothing leaked and every query ran
within --max-seconds. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import gc
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
import traceback
import warnings
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import dns.version
import dns.zone

import dotclient
from dotclient.testing import DEFAULT_ZONE, DEFAULT_ZONE_ORIGIN, TestCA, UnboundServer

HOSTS = 1000
# Queries out of 100, by kind; the names are drawn per query with --seed.
MIX = {
    "host": 40,  # h<k>.example.test A: one address per host, so a mixed-up answer shows
    "a": 8,  # a.example.test A (two addresses)
    "aaaa": 5,  # a.example.test AAAA
    "cname": 10,  # www.example.test A: a CNAME chain to a
    "case": 4,  # Mixed.Example.Test A: answered in the query's case
    "mx": 4,  # example.test MX
    "txt": 4,  # big.example.test TXT: 1,255 bytes of RDATA
    "nodata": 5,  # a.example.test MX: NOERROR, empty answer
    "nx": 15,  # nx-<index>.example.test A: NXDOMAIN, a name of its own per query
    "refused": 5,  # r-<index>.example.com A: outside the zone, REFUSED
}
DOWNTIME = (0.2, 1.5)
# unbound failed to start again (its port taken meanwhile, a slow machine): tries.
START_TRIES = 5
# Seconds to wait for cancelled tasks, stuck threads and the client's close at the end.
CLEANUP = 10.0
# A thread that outlives the clients by design: the blocking backend's shared timers.
SHARED_THREADS = ("dotclient-timers",)


def host_address(k: int) -> str:
    return f"198.18.{k // 256}.{k % 256}"  # RFC 2544's benchmarking range


ZONE = DEFAULT_ZONE + "".join(f"h{k} 300 IN A {host_address(k)}\n" for k in range(HOSTS))


# -- the names and their right answers ---------------------------------------------


Shape = frozenset[tuple[str, int, frozenset[str]]]


@dataclasses.dataclass(frozen=True)
class Probe:
    """One query and the answer it must get."""

    name: str
    qname: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    rcode: dns.rcode.Rcode
    #: Every RRset of the answer section: (owner in lower case, type, rdata texts).
    answer: Shape


class Expect:
    """Right answers, from the zone the server is given (CNAMEs followed in the zone,
    as an authoritative unbound answers)."""

    def __init__(self, text: str, origin: str) -> None:
        self.zone = dns.zone.from_text(text, origin, relativize=False)
        self.origin = dns.name.from_text(origin)

    def probe(self, name: str, rdtype: str) -> Probe:
        qname = dns.name.from_text(name)
        qtype = dns.rdatatype.from_text(rdtype)
        if not qname.is_subdomain(self.origin):
            return Probe(name, qname, qtype, dns.rcode.REFUSED, frozenset())
        shape: set[tuple[str, int, frozenset[str]]] = set()
        owner = qname
        while True:
            node = self.zone.get_node(owner)
            if node is None:
                rcode = dns.rcode.NOERROR if shape else dns.rcode.NXDOMAIN
                return Probe(name, qname, qtype, rcode, frozenset(shape))
            found = node.get_rdataset(self.zone.rdclass, qtype)
            cname = node.get_rdataset(self.zone.rdclass, dns.rdatatype.CNAME)
            rdataset = found if found is not None else cname
            if rdataset is not None:
                texts = frozenset(rd.to_text() for rd in rdataset)
                shape.add((owner.to_text().lower(), rdataset.rdtype, texts))
            if found is not None or cname is None:
                return Probe(name, qname, qtype, dns.rcode.NOERROR, frozenset(shape))
            owner = cname[0].target


def make_probes(count: int, seed: int) -> list[Probe]:
    expect = Expect(ZONE, DEFAULT_ZONE_ORIGIN)
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    fixed = {
        "a": ("a.example.test", "A"),
        "aaaa": ("a.example.test", "AAAA"),
        "cname": ("www.example.test", "A"),
        "case": ("Mixed.Example.Test", "A"),
        "mx": ("example.test", "MX"),
        "txt": ("big.example.test", "TXT"),
        "nodata": ("a.example.test", "MX"),
    }
    cache = {key: expect.probe(*args) for key, args in fixed.items()}
    probes = []
    for index, kind in enumerate(kinds):
        if kind == "host":
            probes.append(expect.probe(f"h{rng.randrange(HOSTS)}.example.test", "A"))
        elif kind == "nx":
            probes.append(expect.probe(f"nx-{index}.example.test", "A"))
        elif kind == "refused":
            probes.append(expect.probe(f"r-{index}.example.com", "A"))
        else:
            probes.append(cache[kind])
    return probes


# Verdicts by (probe, response bytes after the ID): the same bytes get the same verdict,
# and parsing every answer with dnspython would cost more CPU than the client itself.
_VERDICTS: dict[tuple[Probe, bytes], str | None] = {}
_MAX_VERDICTS = 20_000


def verdict(probe: Probe, response: dotclient.Response) -> str | None:
    """None if ``response`` is the right answer to ``probe``, else what is wrong."""
    key = (probe, response.wire[2:])
    try:
        return _VERDICTS[key]
    except KeyError:
        pass
    found = _verdict(probe, response)
    if len(_VERDICTS) >= _MAX_VERDICTS:
        _VERDICTS.clear()
    _VERDICTS[key] = found
    return found


def _verdict(probe: Probe, response: dotclient.Response) -> str | None:
    question = response.question
    if question is None or question != (probe.qname, probe.rdtype):
        return f"question {question} for {probe.name} {probe.rdtype.name}"
    if response.rcode != probe.rcode:
        return f"rcode {response.rcode.name} for {probe.name}, not {probe.rcode.name}"
    got = frozenset(
        (rrset.name.to_text().lower(), rrset.rdtype, frozenset(rd.to_text() for rd in rrset))
        for rrset in response.answer
    )
    if got != probe.answer:
        return f"answer {sorted(got)} for {probe.name}, not {sorted(probe.answer)}"
    return None


# -- outcomes -------------------------------------------------------------------------


class Tally:
    """Every query's outcome, shared by the tasks or threads (under a lock)."""

    def __init__(self, probes: list[Probe], started: float) -> None:
        self.probes = probes
        self.started = started
        self.lock = threading.Lock()
        # By query index; the run may go past len(probes) (see Schedule).
        self.outcome: dict[int, str] = {}
        self.begun: set[int] = set()
        self.running = 0  # queries started and not finished: in flight, as callers see it
        self.done = 0
        self.failed: collections.Counter[str] = collections.Counter()
        self.failed_example: dict[str, str] = {}
        self.failed_at: list[float] = []
        self.other: collections.Counter[str] = collections.Counter()
        self.other_example: dict[str, str] = {}
        self.wrong: list[str] = []
        self.hung: list[str] = []
        self.late: list[str] = []  # what hung blocking queries did in the end
        self.lost_note: list[str] = []
        self.slowest = 0.0

    def probe(self, index: int) -> Probe:
        """The query of index ``index``: past the planned count, the names come round."""
        return self.probes[index % len(self.probes)]

    def begin(self, index: int) -> float:
        with self.lock:
            self.begun.add(index)
            self.running += 1
        return time.monotonic()

    def finish(
        self, index: int, since: float, response: object, exc: BaseException | None
    ) -> None:
        """Record the outcome of query ``index``: ``response`` or ``exc``."""
        probe = self.probe(index)
        took = time.monotonic() - since
        if exc is None:
            assert isinstance(response, dotclient.Response)
            problem = verdict(probe, response)
            kind = "answered" if problem is None else "wrong"
        elif isinstance(exc, dotclient.DoTError):
            kind, problem = "failed", None
        else:
            kind, problem = "other", None
        with self.lock:
            self.running -= 1
            self.done += 1
            self.slowest = max(self.slowest, took)
            if self.outcome.get(index) == "hung":  # the watchdog gave up on it already
                self.late.append(f"{kind} after {took:.1f} s: {exc!r}" if exc else kind)
                return
            self.outcome[index] = kind
            if kind == "wrong":
                if len(self.wrong) < 5 and str(problem) not in self.wrong:
                    self.wrong.append(str(problem))  # a few distinct ones
            elif isinstance(exc, dotclient.DoTError):
                name = type(exc).__name__
                self.failed[name] += 1
                self.failed_example.setdefault(name, f"{exc} (after {took:.2f} s)")
                self.failed_at.append(time.monotonic() - self.started)
            elif exc is not None:
                name = type(exc).__name__
                self.other[name] += 1
                if name not in self.other_example:
                    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                    self.other_example[name] = f"{probe.name}: {tb}"

    def give_up(self, index: int, since: float, why: str) -> None:
        """The watchdog: query ``index`` has not finished in time (counted as hung)."""
        probe = self.probe(index)
        with self.lock:
            if index in self.outcome:
                return
            self.outcome[index] = "hung"
            self.hung.append(
                f"{probe.name} {probe.rdtype.name}: {why} after {time.monotonic() - since:.1f} s"
            )

    def end_hung(self) -> None:
        """A hung async query was cancelled: it no longer runs (no outcome to record)."""
        with self.lock:
            self.running -= 1
            self.done += 1

    def counts(self) -> collections.Counter[str]:
        """Outcomes by kind; "lost" for queries begun that have none."""
        with self.lock:
            counts = collections.Counter(self.outcome.values())
            counts["lost"] = len(self.begun - self.outcome.keys())
            return counts


# -- the restarts ---------------------------------------------------------------------


@dataclasses.dataclass
class Restart:
    """One planned stop of a server, and what happened."""

    after: int  # queries finished before it is due (see Schedule.due)
    how: str  # "kill" or "graceful"
    downtime: float  # seconds between the stop and the start
    server: int = 0  # which server (index into the client's servers)
    at: float = 0.0  # seconds since the soak started, at the stop
    finished: int = 0  # queries finished at the stop
    running: int = 0  # queries in flight in the callers at the stop
    client_in_flight: int = 0  # the client's stats.in_flight at the stop
    back_after: float = 0.0  # seconds from the stop until the server answered again
    start_tries: int = 0
    done: bool = False
    done_when_back: int = 0  # queries finished when the server was serving again
    # How the client saw that server once it was back (its ServerState): failures in a
    # row and the last one's error, before any query reached it again.
    failures_seen: int = 0
    error_seen: str | None = None

    def stopping(self, tally: Tally, stats: dotclient.ClientStats) -> None:
        """Note the moment of the stop: the time, and the queries in flight."""
        self.at = time.monotonic() - tally.started
        self.finished = tally.done
        self.running = tally.running
        self.client_in_flight = stats.in_flight

    def back(self, tally: Tally, stats: dotclient.ClientStats) -> None:
        """Note what the client made of the server's downtime."""
        self.done_when_back = tally.done
        state = stats.servers[self.server]
        self.failures_seen = state.failures
        self.error_seen = None if state.last_error is None else repr(state.last_error)


def plan_restarts(
    queries: int, count: int, how: str, servers: int, rng: random.Random
) -> list[Restart]:
    plan = []
    for k in range(count):
        kind = how if how != "alternate" else ("kill" if k % 2 == 0 else "graceful")
        after = (k + 1) * queries // (count + 1)
        plan.append(Restart(after, kind, round(rng.uniform(*DOWNTIME), 2), k % servers))
    return plan


class Schedule:
    """Which query runs next, and when each restart is due: by counts, never the clock.

    Restart k stops its server once ``after`` queries have finished, and, from the
    second on, once ``gap`` more have finished since the previous restart's server was
    back. The callers keep taking queries until at least ``queries`` have run *and*
    every restart is done (past the planned count the names come round again), so a
    restart always happens with queries in flight, and a machine five times faster or
    slower does the same work: it only takes another time. Shared by the tasks or
    threads; ``take`` and ``due`` are called under no lock of the caller's.
    """

    def __init__(self, queries: int, plan: list[Restart]) -> None:
        self.queries = queries
        self.plan = plan
        self.gap = max(1, queries // (2 * (len(plan) + 1)))
        self.lock = threading.Lock()
        self.taken = 0
        self.stopped = False  # the time bound passed, or a restart failed

    def take(self) -> int | None:
        """The index of the next query to run, or None: the run is over."""
        with self.lock:
            if self.stopped or (self.taken >= self.queries and all(r.done for r in self.plan)):
                return None
            self.taken += 1
            return self.taken - 1

    def due(self, k: int, done: int) -> bool:
        """Whether restart ``k`` may stop its server, ``done`` queries having finished."""
        restart = self.plan[k]
        if done < restart.after:
            return False
        return k == 0 or done >= self.plan[k - 1].done_when_back + self.gap

    def stop(self) -> None:
        """No more queries: the time bound passed or the restarts cannot go on."""
        with self.lock:
            self.stopped = True


def bounce(servers: list[UnboundServer], restart: Restart) -> None:
    """Stop the planned server as planned, wait out the downtime, start it on the same
    port.

    Blocking: runs in a thread of its own, so the queries go on meanwhile.
    """
    server = servers[restart.server]
    stopped = time.monotonic()
    if restart.how == "kill":
        server.kill()
    else:
        server.stop()
    time.sleep(restart.downtime)
    for attempt in range(1, START_TRIES + 1):
        restart.start_tries = attempt
        try:
            server.start()
            break
        except RuntimeError:  # e.g. another process took the port in the downtime
            if attempt == START_TRIES:
                raise
            time.sleep(0.5)
    restart.back_after = time.monotonic() - stopped
    restart.done = True


# -- the two ways to run --------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """What a soak run saw, besides the outcomes in its Tally."""

    stats: dotclient.ClientStats | None = None
    stats_after_close: dotclient.ClientStats | None = None
    timed_out: bool = False  # --max-seconds passed before every query ran
    leftover_tasks: list[str] = dataclasses.field(default_factory=list)
    stuck_threads: list[str] = dataclasses.field(default_factory=list)
    restart_error: str | None = None


async def soak_async(
    options: dict[str, Any],
    servers: list[UnboundServer],
    plan: list[Restart],
    tally: Tally,
    schedule: Schedule,
    args: argparse.Namespace,
) -> Run:
    """``args.concurrency`` tasks share one AsyncClient; each runs queries in turn."""
    run = Run()
    loop = asyncio.get_running_loop()
    limit = args.timeout + args.grace

    async def worker() -> None:
        task = asyncio.current_task()
        assert task is not None

        def expire(index: int, since: float, expired: list[bool]) -> None:
            expired.append(True)
            tally.give_up(index, since, "no outcome")
            task.cancel()

        while (index := schedule.take()) is not None:
            probe = tally.probe(index)
            since = tally.begin(index)
            expired: list[bool] = []  # set by the watchdog
            watchdog = loop.call_later(limit, expire, index, since, expired)
            try:
                response = await client.resolve(probe.name, probe.rdtype)
            except asyncio.CancelledError:
                if not expired:  # the time bound: this query was still running
                    tally.give_up(index, since, "still running at the time bound")
                    tally.end_hung()
                    raise
                tally.end_hung()
                continue
            except Exception as exc:
                tally.finish(index, since, None, exc)
            else:
                # If the watchdog fired, the client swallowed the cancellation: the
                # outcome is recorded as late, the query stays hung.
                tally.finish(index, since, response, None)
            finally:
                watchdog.cancel()
                if expired and sys.version_info >= (3, 11):
                    task.uncancel()  # the watchdog's cancellation is dealt with

    async def restarter() -> None:
        for k, restart in enumerate(plan):
            while not schedule.due(k, tally.done) and not schedule.stopped:
                await asyncio.sleep(0.005)
            if schedule.stopped:
                return
            restart.stopping(tally, client.stats)
            try:
                await asyncio.to_thread(bounce, servers, restart)
            except RuntimeError as exc:
                run.restart_error = str(exc)
                schedule.stop()
                return
            restart.back(tally, client.stats)

    client = dotclient.AsyncClient(**options)
    try:
        tasks = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        bouncer = asyncio.create_task(restarter())
        left = tally.started + args.max_seconds - time.monotonic()
        _, pending = await asyncio.wait(tasks, timeout=max(left, 0))
        if pending:
            run.timed_out = True
            schedule.stop()
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=CLEANUP)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                tally.lost_note.append(f"a worker task died: {task.exception()!r}")
        schedule.stop()
        await asyncio.wait([bouncer], timeout=CLEANUP + DOWNTIME[1] + 10 * START_TRIES)
        if not bouncer.done():
            bouncer.cancel()
            run.leftover_tasks.append("the restarter did not finish")
        run.stats = client.stats
    finally:
        # Bounded: a close that never returns is reported, not waited for.
        closing = asyncio.create_task(client.aclose())
        await asyncio.wait([closing], timeout=CLEANUP)
        if not closing.done():
            run.leftover_tasks.append("AsyncClient.aclose() did not return")
    try:
        run.stats_after_close = client.stats
    finally:
        current = asyncio.current_task()
        run.leftover_tasks += [repr(t) for t in asyncio.all_tasks() if t is not current]
    return run


def soak_threads(
    options: dict[str, Any],
    servers: list[UnboundServer],
    plan: list[Restart],
    tally: Tally,
    schedule: Schedule,
    args: argparse.Namespace,
) -> Run:
    """``args.threads`` threads share one blocking Client; each runs queries in turn.

    A thread cannot be cancelled: the watchdog (this thread) marks a query hung when it
    runs past the limit, and what it did in the end is reported as late.
    """
    run = Run()
    limit = args.timeout + args.grace
    # What each thread is doing: (query index, when it started), or None.
    slots: list[tuple[int, float] | None] = [None] * args.threads
    client = dotclient.Client(**options)

    def worker(slot: int) -> None:
        while (index := schedule.take()) is not None:
            probe = tally.probe(index)
            since = tally.begin(index)
            slots[slot] = (index, since)
            try:
                response = client.resolve(probe.name, probe.rdtype)
            except Exception as exc:
                tally.finish(index, since, None, exc)
            else:
                tally.finish(index, since, response, None)
            finally:
                slots[slot] = None

    def restarter() -> None:
        for k, restart in enumerate(plan):
            while not schedule.due(k, tally.done) and not schedule.stopped:
                time.sleep(0.005)
            if schedule.stopped:
                return
            restart.stopping(tally, client.stats)
            try:
                bounce(servers, restart)
            except RuntimeError as exc:
                run.restart_error = str(exc)
                schedule.stop()
                return
            restart.back(tally, client.stats)

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"soak-{i}", daemon=True)
        for i in range(args.threads)
    ]
    bouncer = threading.Thread(target=restarter, name="soak-restarter", daemon=True)
    try:
        for thread in threads:
            thread.start()
        bouncer.start()
        end = tally.started + args.max_seconds
        while any(t.is_alive() for t in threads):
            now = time.monotonic()
            for slot in list(slots):
                if slot is not None and now - slot[1] > limit:
                    tally.give_up(slot[0], slot[1], "no outcome")
            if now > end:
                run.timed_out = True
                schedule.stop()
                break
            time.sleep(0.05)
        schedule.stop()
        for thread in threads:
            thread.join(CLEANUP if run.timed_out else 0.1)
        for slot in list(slots):
            if slot is not None:
                tally.give_up(slot[0], slot[1], "still running at the time bound")
        bouncer.join(CLEANUP + DOWNTIME[1] + 10 * START_TRIES)
        run.stats = client.stats
    finally:
        closer = threading.Thread(target=client.close, name="soak-close", daemon=True)
        closer.start()
        closer.join(CLEANUP)
        if closer.is_alive():
            run.stuck_threads.append("Client.close() did not return")
    run.stats_after_close = client.stats
    run.stuck_threads += [t.name for t in [*threads, bouncer] if t.is_alive()]
    return run


# -- leaks ----------------------------------------------------------------------------


def open_fds() -> dict[int, str]:
    fds = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:  # the directory's own fd, closed by now
            pass
    return fds


def threads_now() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name not in SHARED_THREADS}


# -- the soak and its report ------------------------------------------------------------


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak as ``args`` say; return the report (printed by main)."""
    rng = random.Random(args.seed)
    probes = make_probes(args.queries, args.seed)
    plan = plan_restarts(args.queries, args.restarts, args.how, args.servers, rng)
    gc.collect()
    fds_before, threads_before = open_fds(), threads_now()
    warned: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        ca = TestCA()
        cert = ca.issue("dot.test", "127.0.0.1")
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(UnboundServer(cert, zone=ZONE)) for _ in range(args.servers)
            ]
            options: dict[str, Any] = {
                "servers": [f"127.0.0.1:{server.port}#dot.test" for server in servers],
                "strategy": args.strategy,
                "ca_file": ca.write_ca_file(f"{tmp}/ca.pem"),
                "timeout": args.timeout,
            }
            tally = Tally(probes, time.monotonic())
            schedule = Schedule(args.queries, plan)
            if args.threads:
                run = soak_threads(options, servers, plan, tally, schedule, args)
            else:
                run = asyncio.run(soak_async(options, servers, plan, tally, schedule, args))
            wall = time.monotonic() - tally.started
        del servers, stack
        gc.collect()
        warned = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    fds_after, threads_after = open_fds(), threads_now()

    counts = tally.counts()
    # Planned queries never started are "not run" (time bound); started with no outcome:
    # lost. More than planned may run: the callers go on until every restart is done.
    started = len(tally.begun)
    lost = counts["lost"]
    not_run = max(len(probes) - started, 0)
    stats = run.stats or dotclient.ClientStats()
    after = run.stats_after_close or dotclient.ClientStats()
    leaked_fds = {fd: path for fd, path in fds_after.items() if fd not in fds_before}
    leaks = {
        "fds": [f"{fd} -> {path}" for fd, path in sorted(leaked_fds.items())],
        "tasks": run.leftover_tasks,
        "threads": sorted((threads_after - threads_before) | set(run.stuck_threads)),
        "resource_warnings": warned[:5],
        "open_after_close": after.open_connections + after.in_flight,
    }
    failure_windows = collections.Counter(
        sum(1 for r in plan if r.done and r.at <= at) for at in tally.failed_at
    )
    report: dict[str, Any] = {
        "mode": f"{args.threads} threads" if args.threads else f"{args.concurrency} tasks",
        "planned": len(probes),
        "queries": started,
        "answered": counts["answered"],
        "failed": dict(tally.failed.most_common()),
        "failed_examples": tally.failed_example,
        "failed_after_restart": {k: failure_windows[k] for k in sorted(failure_windows)},
        "wrong": counts["wrong"],
        "wrong_examples": tally.wrong,
        "other": dict(tally.other),
        "other_examples": tally.other_example,
        "hung": counts["hung"],
        "hung_examples": tally.hung[:5],
        "hung_late": tally.late[:5],
        "lost": lost,
        "lost_notes": tally.lost_note[:5],
        "not_run": not_run,
        "timed_out": run.timed_out,
        "restart_error": run.restart_error,
        "wall": wall,
        "qps": started / wall if wall > 0 else 0.0,
        "slowest": tally.slowest,
        "restarts": [dataclasses.asdict(r) for r in plan],
        "stats": {
            field.name: getattr(stats, field.name)
            for field in dataclasses.fields(stats)
            if field.name != "servers"
        },
        # Each server as the client saw it at the end (last_error: while failures > 0).
        "servers": [
            {
                "server": str(state.server),
                "responses": state.responses,
                "failures": state.failures,
                "last_error": None if state.last_error is None else repr(state.last_error),
            }
            for state in stats.servers
        ],
        "responses_match": stats.responses
        == counts["answered"] + counts["wrong"] + tally.late.count("answered"),
        "leaks": leaks,
    }
    problems = []
    for key in ("wrong", "hung", "lost", "not_run"):
        if report[key]:
            problems.append(f"{report[key]} {key.replace('_', ' ')}")
    if run.timed_out:
        problems.append(f"--max-seconds {args.max_seconds:g} passed")
    if tally.other:
        problems.append(f"{sum(tally.other.values())} other exceptions")
    if not report["responses_match"]:
        problems.append("stats.responses does not match the responses received")
    if args.servers > 1 and tally.failed:  # one server was always up
        problems.append(f"{sum(tally.failed.values())} failed")
    if run.restart_error or sum(r.done for r in plan) < len(plan):
        problems.append(f"{sum(r.done for r in plan)} of {len(plan)} restarts done")
    for kind, found in leaks.items():
        if found:
            problems.append(f"leaked {kind}: {found}")
    report["problems"] = problems
    report["ok"] = not problems
    return report


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    several = args.servers > 1
    server = (
        f"servers: {args.servers} x unbound on 127.0.0.1 (1 thread each), {args.strategy}"
        if several
        else "server: unbound on 127.0.0.1 (1 thread)"
    )
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs  "
        f"Python {platform.python_version()}  dotclient {dotclient.__version__}  "
        f"dnspython {dns.version.version}  {server}"
    )
    client = "blocking Client" if args.threads else "AsyncClient"
    print(
        f"# {report['queries']} queries ({report['planned']} planned) from {report['mode']} "
        f"sharing one {client} "
        f"(defaults, timeout {args.timeout:g} s; watchdog at {args.timeout + args.grace:g} s), "
        f"seed {args.seed}"
    )
    print("\nrestarts (at: seconds since start; in flight: in the callers / client.stats)")
    for k, r in enumerate(report["restarts"], 1):
        if not r["done"]:
            print(f"  {k}. {r['how']:8} not done")
            continue
        print(
            f"  {k}. {r['how']:8} "
            + (f"server {r['server']} " if several else "")
            + f"at {r['at']:6.2f} s after {r['finished']:>6} finished, "
            f"in flight {r['running']:>3} / {r['client_in_flight']:>3}, "
            f"down {r['downtime']:.2f} s, serving again after {r['back_after']:.2f} s"
            + (f" ({r['start_tries']} starts)" if r["start_tries"] > 1 else "")
        )
        if several:
            print(f"     back: failures {r['failures_seen']}, last error {r['error_seen']}")
    print("\noutcomes")
    print(f"  answered   {report['answered']:>7}")
    failed = report["failed"]
    print(f"  failed     {sum(failed.values()):>7}  (a dotclient.DoTError)")
    for name, count in failed.items():
        print(f"    {name:16} {count:>5}  e.g. {report['failed_examples'][name]}")
    if failed:
        windows = ", ".join(f"{k}: {n}" for k, n in report["failed_after_restart"].items())
        print(f"    by the restart they followed (0: before any): {windows}")
    print(f"  wrong      {report['wrong']:>7}")
    for example in report["wrong_examples"]:
        print(f"    {example}")
    other = report["other"]
    print(f"  other      {sum(other.values()):>7}")
    for name, count in other.items():
        print(f"    {name} x{count}: {report['other_examples'][name]}")
    print(f"  hung       {report['hung']:>7}")
    for example in report["hung_examples"]:
        print(f"    {example}")
    for example in report["hung_late"]:
        print(f"    in the end: {example}")
    print(f"  lost       {report['lost']:>7}")
    for note in report["lost_notes"]:
        print(f"    {note}")
    if report["not_run"]:
        print(f"  not run    {report['not_run']:>7}  (--max-seconds {args.max_seconds:g} passed)")
    print(
        f"\n{report['wall']:.1f} s wall, {report['qps']:.0f} queries/s (restarts included); "
        f"slowest query {report['slowest']:.2f} s"
    )
    stats = report["stats"]
    shown = (
        "connections_opened",
        "sessions_resumed",
        "queries_sent",
        "responses",
        "resent",
        "idle_closed",
        "pipelining_fallbacks",
        "unmatched",
        "pipelining",
    )
    print("client.stats: " + ", ".join(f"{k} {stats[k]}" for k in shown))
    if several:
        print(f"servers (at the end), failovers {stats['failovers']}:")
        for k, state in enumerate(report["servers"]):
            print(
                f"  {k}. {state['server']}: responses {state['responses']}, "
                f"failures {state['failures']}, last error {state['last_error']}"
            )
    leaks = report["leaks"]
    print(
        "leaks: "
        + ", ".join(f"{k} {len(v) if isinstance(v, list) else v}" for k, v in leaks.items())
        + " (fds, tasks and threads before vs after; ResourceWarnings; connections or"
        " queries still open after close)"
    )
    for kind, found in leaks.items():
        if found:
            print(f"  {kind}: {found}")
    print("\nOK" if report["ok"] else "\nFAILED: " + "; ".join(report["problems"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000, help="queries in all")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="tasks sharing the AsyncClient"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="use a blocking Client shared by N threads"
    )
    parser.add_argument("--restarts", type=int, default=5, help="times the server is stopped")
    parser.add_argument(
        "--how",
        choices=("alternate", "kill", "graceful"),
        default="alternate",
        help="stop with SIGKILL, SIGTERM, or alternately (a kill first)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="dotclient's timeout")
    parser.add_argument(
        "--grace", type=float, default=2.0, help="watchdog: a query is hung after timeout+grace"
    )
    parser.add_argument("--seed", type=int, default=None, help="names and downtimes")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="give up and report after this"
    )
    parser.add_argument(
        "--servers", type=int, default=1, help="servers for the one client; restarts go round"
    )
    parser.add_argument(
        "--strategy",
        choices=("failover", "round_robin"),
        default="failover",
        help="the client's strategy with several servers",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    if (
        min(args.queries, args.concurrency, args.servers) < 1
        or min(args.threads, args.restarts) < 0
    ):
        parser.error(
            "--queries, --concurrency and --servers must be positive, the others not negative"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = soak(args)
    print_report(report, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, default=str)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
