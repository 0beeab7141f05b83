"""The pool's rules (``dotclient._policy``), one table row per rule: injected time, a
stand-in for the protocol core's counters, no sockets and no event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from dotclient._exceptions import ConnectError, ConnectionLost, DoTError, TLSError
from dotclient._policy import (
    Budget,
    ConnectionState,
    Ending,
    Loss,
    PoolPolicy,
    Release,
    Session,
    State,
    _connection,
    _pool,
    restart_pause,
)
from dotclient._stats import ClientStats

LIFETIME = _pool._LIMIT_LIFETIME
STALL = _connection._STALL


@dataclass
class Core:
    """What the policy reads of a connection's ``DoTProtocol``."""

    answered: int = 0
    abandoned: int = 0
    closed: bool = False
    unmatched: int = 0
    keepalive_timeout: float | None = None
    partial: str | None = None
    QUERY_IDS: int = 65536


class Conn(ConnectionState):
    """A connection without a stream: ``torn`` and ``flooded`` set by the test."""

    def __init__(self, now: float = 0.0, resumed: bool = False, **core: Any) -> None:
        super().__init__(Core(**core), now, resumed)  # type: ignore[arg-type]
        self.is_torn = False
        self.is_flooded = False

    @property
    def torn(self) -> bool:
        return self.is_torn

    @property
    def flooded(self) -> bool:
        return self.is_flooded


def conn(
    reserved: int = 0,
    assigned: int | None = None,
    state: State = State.OPEN,
    torn: bool = False,
    flooded: bool = False,
    **core: Any,
) -> Conn:
    c = Conn(**core)
    c.reserved = reserved
    c.assigned = reserved if assigned is None else assigned
    c.state = state
    c.is_torn, c.is_flooded = torn, flooded
    return c


def policy(max_in_flight: int = 100, max_connections: int = 1, **attrs: Any) -> PoolPolicy[Conn]:
    p: PoolPolicy[Conn] = PoolPolicy(max_in_flight, max_connections, 10.0, ClientStats())
    for name, value in attrs.items():
        setattr(p, name, value)
    return p


def pooled(p: PoolPolicy[Conn], *conns: Conn) -> PoolPolicy[Conn]:
    p.pool.extend(conns)
    return p


# Which connection takes a query: (rule, policy options, connections, now, taken index).
TAKE = [
    ("the least busy one", {}, [conn(3), conn(1), conn(2)], 0.0, 1),
    ("a full one takes none", {"max_in_flight": 2}, [conn(2)], 0.0, None),
    ("one below the limit", {"max_in_flight": 2}, [conn(1)], 0.0, 0),
    ("a retired one takes none", {}, [conn(0, state=State.DRAINING)], 0.0, None),
    ("a torn one takes none", {}, [conn(0, torn=True)], 0.0, None),
    ("one the server closed takes none", {}, [conn(0, closed=True)], 0.0, None),
    ("no query ID left", {}, [conn(1, abandoned=65535)], 0.0, None),
    ("the last query ID", {}, [conn(0, abandoned=65535)], 0.0, 0),
    ("probing: an unanswered one takes one", {"probe_until": 30.0}, [conn(1)], 10.0, None),
    (
        "probing: an answered one is full size",
        {"probe_until": 30.0},
        [conn(1, answered=1)],
        10.0,
        0,
    ),
    ("the probe window ends at its deadline", {"probe_until": 30.0}, [conn(1)], 30.0, 0),
    ("a flooded idle one is dropped", {}, [conn(0, flooded=True), conn(5)], 0.0, 1),
    ("a flooded busy one is kept", {}, [conn(1, flooded=True)], 0.0, 0),
]


@pytest.mark.parametrize(
    ("rule", "options", "conns", "now", "taken"), TAKE, ids=[r[0] for r in TAKE]
)
def test_which_connection_takes_a_query(
    rule: str, options: dict[str, Any], conns: list[Conn], now: float, taken: int | None
) -> None:
    p = pooled(policy(**options), *conns)
    before = [c.reserved for c in conns]
    best = p.take(now)
    assert best is (None if taken is None else conns[taken])
    if best is not None:
        assert best.reserved == before[taken] + 1 and p.stats.queries_sent == 1
        assert p.pass_on is (best.reserved < p.room(best, p.probing(now)))


@pytest.mark.parametrize(("reserved", "pass_on"), [(0, True), (1, False)])
def test_a_connection_with_room_left_passes_the_turn_on(reserved: int, pass_on: bool) -> None:
    c = conn(reserved)
    p = pooled(policy(max_in_flight=2), c)
    assert p.take(0.0) is c and p.pass_on is pass_on
    for c in p.flooded:
        assert c.state is State.CLOSED and c not in p.pool and not c.reserved


# A limit taught by the server: (rule, assigned before, now, learnt_until, retired, kept).
LEARNT = [
    ("below the limit", 3, 10.0, 40.0, False, True),
    ("at the limit: retired", 4, 10.0, 40.0, True, True),
    ("at exactly its expiry: still held", 4, 40.0, 40.0, True, True),
    ("past its expiry: forgotten, learnt again", 4, 40.001, 40.0, False, False),
]


@pytest.mark.parametrize(
    ("rule", "assigned", "now", "until", "retired", "kept"), LEARNT, ids=[r[0] for r in LEARNT]
)
def test_a_learnt_limit_retires_a_connection_until_it_expires(
    rule: str, assigned: int, now: float, until: float, retired: bool, kept: bool
) -> None:
    c = conn(0, assigned=assigned)
    p = pooled(policy(learnt_limit=5, learnt_until=until, last_close=5), c)
    assert p.take(now) is c
    assert (c.state is State.DRAINING) is retired and (c in p.draining) is retired
    assert (p.learnt_limit == 5) is kept and (p.last_close == 5) is kept


# When to open a connection: (rule, max_connections, pooled, draining, connecting, opens).
OPEN = [
    ("nothing open", 1, [], [], False, True),
    ("one open and the limit 1", 1, [conn(1)], [], False, False),
    ("one open and the limit 2", 2, [conn(1)], [], False, True),
    ("one connect at a time", 2, [], [], True, False),
    ("a draining one counts", 1, [], [conn(1, state=State.DRAINING)], False, False),
    (
        "unless the server closed it",
        1,
        [],
        [conn(1, state=State.DRAINING, closed=True)],
        False,
        True,
    ),
    ("or this client did", 1, [], [conn(1, state=State.CLOSED)], False, True),
    ("an unusable pooled one does not", 1, [conn(0, torn=True)], [], False, True),
]


@pytest.mark.parametrize(
    ("rule", "limit", "conns", "draining", "connecting", "opens"), OPEN, ids=[r[0] for r in OPEN]
)
def test_when_a_connection_opens(
    rule: str, limit: int, conns: list[Conn], draining: list[Conn], connecting: bool, opens: bool
) -> None:
    p = pooled(policy(max_connections=limit, connecting=connecting), *conns)
    p.draining.update(draining)
    assert p.may_open() is opens
    assert p.connecting is (opens or connecting)


# A new connection wakes as many waiters as it has room for beside its own query.
# While probing it takes no more, but a waiter may open another where more are allowed.
@pytest.mark.parametrize(
    ("probe_until", "resumed", "most", "room"),
    [(0.0, False, 1, 99), (30.0, True, 1, 0), (30.0, False, 2, 1)],
    ids=["full", "probe", "probe, another may open"],
)
def test_a_new_connection_has_room_for_waiters(
    probe_until: float, resumed: bool, most: int, room: int
) -> None:
    p = policy(probe_until=probe_until, connecting=True, max_connections=most)
    c = Conn(resumed=resumed)
    p.connected(c)
    assert p.add(c, 10.0) == room
    assert (p.connecting, p.opened, p.stats.connections_opened) == (False, 1, 1)
    assert p.stats.sessions_resumed == int(resumed) and c.reserved == 1


@dataclass
class LostRow:
    """A query lost with its connection, and what becomes of it."""

    rule: str
    c: Conn
    verdict: Loss
    charged: int  # sends counted against _MAX_SENDS afterwards
    responses: int = 0  # the server's answers to this client before
    elsewhere: bool = False  # an answer came on another connection since it was sent
    unsent: bool = False
    reset: bool = False
    closing: bool = False
    budget: tuple[int, int] = (0, 0)  # (charged, free) before
    probe: bool = False  # a probe window opens


CLOSED = State.CLOSED
LOST = [
    LostRow("a lone query is charged", conn(1), Loss.RESEND, 1),
    LostRow("the third charged send fails as is", conn(1), Loss.RAISE, 3, budget=(2, 0)),
    LostRow("an unsent third: ConnectionLost", conn(1), Loss.LOST, 3, unsent=True, budget=(2, 0)),
    LostRow("answers on it: free", conn(1, answered=3), Loss.RESEND, 2, 1, budget=(2, 0)),
    LostRow("answers elsewhere: free", conn(1), Loss.RESEND, 2, 1, elsewhere=True, budget=(2, 0)),
    LostRow("unsent, closed at once: charged", conn(1), Loss.RESEND, 1, unsent=True),
    LostRow("unsent, closed by us: free", conn(1, state=CLOSED), Loss.RESEND, 0, unsent=True),
    LostRow("cut under two: free", conn(2, state=CLOSED), Loss.RESEND, 2, 1, budget=(2, 0)),
    LostRow("a lone one cut is not", conn(1, state=CLOSED), Loss.RAISE, 3, 1, budget=(2, 0)),
    LostRow("16 free at most", conn(2, answered=1), Loss.RAISE, 3, 1, budget=(2, 16)),
    LostRow(
        "reset, never answered: free",
        conn(2, state=CLOSED),
        Loss.RESEND,
        2,
        reset=True,
        budget=(2, 1),
    ),
    LostRow("... 2 free at most", conn(2, state=CLOSED), Loss.RAISE, 3, reset=True, budget=(2, 2)),
    LostRow("an early cut: probe, 16 free", conn(2), Loss.RESEND, 2, budget=(2, 15), probe=True),
    LostRow("the client closing", conn(2, answered=1), Loss.LOST, 1, 1, closing=True),
]


@pytest.mark.parametrize("row", LOST, ids=[r.rule for r in LOST])
def test_a_lost_query_is_resent_free_charged_or_failed(row: LostRow) -> None:
    p = policy(responses=row.responses)
    p.stats.responses = row.responses
    budget = Budget()
    budget.charged, budget.free = row.budget
    before = row.responses - 1 if row.elsewhere else row.responses
    verdict = p.lost(
        budget,
        row.c,
        unsent=row.unsent,
        reset=row.reset,
        before=before,
        closing=row.closing,
        now=5.0,
    )
    assert (verdict, budget.charged) == (row.verdict, row.charged)
    assert p.probe_until == (5.0 + LIFETIME if row.probe else 0.0)
    assert p.stats.resent == int(verdict is Loss.RESEND)


def closed_by_server(answered: int, busy: bool = True) -> Conn:
    """A connection whose close was read: busy (an answer came after a query still
    unanswered was sent) or idle."""
    c = conn(1, answered=answered)
    c.note_sent(1, 1.0)
    c.note_read([], 2.0 if busy else 0.5)
    c.last_answer = 2.0 if busy else 0.5
    c.note_close()
    return c


# What server closes teach: (rule, closes in a row, limit, last close).
CLOSES = [
    ("one busy close teaches nothing yet", [closed_by_server(5)], None, 5),
    ("the second teaches the larger count", [closed_by_server(5), closed_by_server(4)], 5, 4),
    (
        "an idle close teaches nothing",
        [closed_by_server(5), closed_by_server(4, busy=False)],
        None,
        5,
    ),
    (
        "a close before any answer teaches nothing",
        [closed_by_server(0), closed_by_server(0)],
        None,
        None,
    ),
    ("a close not read yet is not noted", [conn(1, answered=5), conn(1, answered=5)], None, None),
]


@pytest.mark.parametrize(("rule", "closes", "limit", "last"), CLOSES, ids=[r[0] for r in CLOSES])
def test_a_limit_per_connection_is_learnt_from_two_busy_closes(
    rule: str, closes: list[Conn], limit: int | None, last: int | None
) -> None:
    p = policy(responses=1)
    for c in closes:
        p.lost(Budget(), c, unsent=False, reset=False, before=0, closing=False, now=7.0)
    assert (p.learnt_limit, p.last_close) == (limit, last)
    assert p.learnt_until == (7.0 + LIFETIME if limit else 0.0)


def test_a_close_is_noted_once_and_not_when_this_client_closed() -> None:
    p = policy(responses=1)
    c = closed_by_server(5)
    for _ in range(2):  # every query on it reports the same close
        p.lost(Budget(), c, unsent=False, reset=False, before=0, closing=False, now=1.0)
    assert c.ending is Ending.CLOSE_NOTED and p.last_close == 5 and p.learnt_limit is None
    ours = closed_by_server(5)
    ours.mark_closed()
    p.lost(Budget(), ours, unsent=False, reset=False, before=0, closing=False, now=1.0)
    assert ours.ending is Ending.CLOSED_BUSY and p.learnt_limit is None


# Stalls: (rule, stalls of other connections before, stall budget before, closing,
# verdict, limit after, pipelining, fallbacks).
STALLS = [
    ("one stall may be a slow answer", 0, 0, False, Loss.RESEND, 100, None, 0),
    ("a second connection stalling: one query each", 1, 0, False, Loss.RESEND, 1, False, 1),
    ("a query stalls at most _MAX_SENDS times", 0, 3, False, Loss.LOST, 100, None, 0),
    ("a closing client resends nothing", 0, 0, True, Loss.LOST, 100, None, 0),
]


@pytest.mark.parametrize(
    ("rule", "others", "stalls", "closing", "verdict", "limit", "pipelining", "fallbacks"),
    STALLS,
    ids=[r[0] for r in STALLS],
)
def test_stalls_resend_and_then_stop_pipelining(
    rule: str,
    others: int,
    stalls: int,
    closing: bool,
    verdict: Loss,
    limit: int,
    pipelining: bool | None,
    fallbacks: int,
) -> None:
    p = policy()
    for _ in range(others):
        p.stalled(Budget(), conn(1), False)
    budget = Budget()
    budget.stalls = stalls
    c = conn(2)
    assert p.stalled(budget, c, closing) is verdict
    assert p.stalled(Budget(), c, closing) in (Loss.RESEND, Loss.LOST)  # counted once
    assert c.ending is Ending.STALL_NOTED and p.stall_count == others + 1
    assert (p.max_in_flight, p.pipelining, p.stats.pipelining_fallbacks) == (
        limit,
        pipelining,
        fallbacks,
    )


def sent_and_answered(sent: float, answer: float | None, data: float) -> Conn:
    c = conn(1)
    c.note_sent(1, sent)
    if answer is not None:
        c.note_sent(2, sent)
        c.note_read([2], answer)
    c.last_data = data
    return c


# The stall deadline: (rule, connection, deadline, watch, pipelined, read deadline).
READS = [
    (
        "no answer since the query: no stall",
        sent_and_answered(1.0, None, 1.0),
        9.0,
        True,
        False,
        9.0,
    ),
    (
        "an answer before it was sent: none",
        sent_and_answered(1.0, 0.5, 1.0),
        9.0,
        True,
        False,
        9.0,
    ),
    (
        "an answer after: silence after the data",
        sent_and_answered(1.0, 2.0, 2.5),
        9.0,
        True,
        False,
        2.5 + STALL,
    ),
    ("the query's deadline first", sent_and_answered(1.0, 2.0, 2.5), 2.6, True, False, 2.6),
    (
        "not watched once the server's pipelining is known",
        sent_and_answered(1.0, 2.0, 2.5),
        9.0,
        False,
        False,
        9.0,
    ),
    (
        "not once the connection proved pipelining",
        sent_and_answered(1.0, 2.0, 2.5),
        9.0,
        True,
        True,
        9.0,
    ),
]


@pytest.mark.parametrize(
    ("rule", "c", "deadline", "watch", "proven", "read_by"), READS, ids=[r[0] for r in READS]
)
def test_the_stall_deadline(
    rule: str, c: Conn, deadline: float, watch: bool, proven: bool, read_by: float
) -> None:
    if proven:
        c.pipelined_answers = _connection._PIPELINING_PROOF
    assert c.read_deadline(deadline, watch) == read_by


def test_answers_behind_unanswered_ones_prove_pipelining_and_bookkeeping_empties() -> None:
    c = conn(0)
    for qid in range(_connection._PIPELINING_PROOF + 1):
        c.note_sent(qid, 1.0)
    assert not c.pipelined
    c.note_read(range(1, _connection._PIPELINING_PROOF + 1), 2.0)  # all but the first
    assert c.pipelined and c.stall_deadline() == 2.0 + STALL
    c.note_read([0], 3.0)
    c.note_gone(0)
    assert c.stall_deadline() is None and not c._order and not c._sent_at


# A server's close is busy when a query sent before the last answer is unanswered.
@pytest.mark.parametrize(
    ("answer", "ending"), [(2.0, Ending.CLOSED_BUSY), (0.5, Ending.CLOSED_IDLE)]
)
def test_a_close_is_busy_or_idle(answer: float, ending: Ending) -> None:
    assert closed_by_server(3, busy=answer > 1.0).ending is ending


# Idle deadlines: (rule, keepalive offered, our idle timeout, the connection's timeout).
IDLE = [
    ("none offered: ours", None, 10.0, 10.0),
    ("0 offered: close soon", 0.0, 10.0, 0.0),
    ("a short one: 90 % of it", 5.0, 10.0, 4.5),
    ("a long one: ours", 3600.0, 10.0, 10.0),
]


@pytest.mark.parametrize(("rule", "offered", "ours", "timeout"), IDLE, ids=[r[0] for r in IDLE])
def test_the_idle_timeout(rule: str, offered: float | None, ours: float, timeout: float) -> None:
    p = policy(idle_timeout=ours)
    assert p.idle_timeout_of(conn(0, keepalive_timeout=offered)) == pytest.approx(timeout)


# The idle timer fires: (rule, connection, idle since, now, outcome, closed and counted).
IDLE_CHECK = [
    ("busy again: nothing", conn(1), 0.0, 10.0, None, False),
    ("closed meanwhile: nothing", conn(0, state=State.CLOSED), 0.0, 10.0, None, False),
    ("busy meanwhile: checked again later", conn(0), 4.0, 10.0, 4.0, False),
    ("idle for the timeout: closed", conn(0), 0.0, 10.0, 0.0, True),
    ("within a millisecond of it: closed", conn(0), 0.0, 9.9995, 0.0, True),
    ("retired: closed at once", conn(0, state=State.DRAINING), 4.0, 10.0, 0.0, True),
]


@pytest.mark.parametrize(
    ("rule", "c", "since", "now", "outcome", "closed"), IDLE_CHECK, ids=[r[0] for r in IDLE_CHECK]
)
def test_the_idle_timer(
    rule: str, c: Conn, since: float, now: float, outcome: float | None, closed: bool
) -> None:
    p = pooled(policy(), c)
    c.idle_since = since
    got = p.idle_check(c, now)
    assert got == (None if outcome is None else pytest.approx(outcome))
    assert (c.state is State.CLOSED and c not in p.pool) is closed
    assert p.stats.idle_closed == int(closed)


# Releasing a query: (rule, connection, max_in_flight, outcome, retired).
RELEASE = [
    ("still busy", conn(2), 100, Release.BUSY, False),
    ("idle", conn(1), 100, Release.IDLE, False),
    ("retired and done: closed", conn(1, state=State.DRAINING), 100, Release.CLOSE, True),
    ("4,096 abandoned IDs: retired", conn(1, abandoned=4096), 1, Release.CLOSE, True),
    ("4,095 abandoned IDs: kept", conn(1, abandoned=4095), 1, Release.IDLE, False),
    ("fewer free IDs than a full load", conn(1, abandoned=4000), 61537, Release.CLOSE, True),
    ("as many free IDs as a full load", conn(1, abandoned=4000), 61536, Release.IDLE, False),
    ("the server closed it", conn(1, closed=True), 100, Release.CLOSE, True),
    ("a torn write", conn(1, torn=True), 100, Release.CLOSE, True),
]


@pytest.mark.parametrize(
    ("rule", "c", "limit", "outcome", "retired"), RELEASE, ids=[r[0] for r in RELEASE]
)
def test_a_release_retires_closes_or_idles(
    rule: str, c: Conn, limit: int, outcome: Release, retired: bool
) -> None:
    p = policy(max_in_flight=limit)
    if c.state is State.OPEN:
        pooled(p, c)
    else:
        p.draining.add(c)
    assert p.release(c) is outcome
    assert (c.state is not State.OPEN) is retired and c not in p.draining
    if outcome is Release.CLOSE:
        assert c.state is State.CLOSED


def test_a_retired_connection_drains_then_closes() -> None:
    c = conn(2)
    p = pooled(policy(), c)
    p.unpool(c)
    assert c.state is State.DRAINING and c in p.draining and p.active() == 1
    assert p.release(c) is Release.BUSY and c in p.draining
    assert p.release(c) is Release.CLOSE and c not in p.draining and p.active() == 0
    p.idle(conn(0), 3.0)


# After an answer: (rule, connection, probe window, wake a waiter, retired, pipelining).
ANSWERED = [
    ("a plain answer", conn(1, answered=1), 0.0, False, False, None),
    ("a probe answered: room again", conn(1, answered=1), 30.0, True, False, None),
    ("the probe window is over: no wake", conn(1, answered=1), 5.0, False, False, None),
    ("keepalive 0: retired", conn(1, keepalive_timeout=0.0), 0.0, False, True, None),
]


@pytest.mark.parametrize(
    ("rule", "c", "probe", "wake", "retired", "pipelining"), ANSWERED, ids=[r[0] for r in ANSWERED]
)
def test_an_answer(
    rule: str, c: Conn, probe: float, wake: bool, retired: bool, pipelining: bool | None
) -> None:
    p = pooled(policy(probe_until=probe), c)
    assert p.answered(c, 10.0) is wake
    assert (c.state is State.DRAINING) is retired
    assert (p.responses, p.stats.responses, p.pipelining) == (1, 1, pipelining)


def test_a_pipelined_answer_proves_the_server_pipelines() -> None:
    c = conn(1)
    c.pipelined_answers = _connection._PIPELINING_PROOF
    p = pooled(policy(), c)
    p.answered(c, 10.0)
    assert p.pipelining is True


@pytest.mark.parametrize(
    ("resumed", "keeps"), [(False, [True, False]), (True, [False, False])], ids=["full", "resumed"]
)
def test_a_session_is_kept_once_from_a_full_handshake(resumed: bool, keeps: list[bool]) -> None:
    p, c = policy(), Conn(resumed=resumed)
    assert [p.keep_session(c), p.keep_session(c)] == keeps
    assert c.session is (Session.RESUMED if resumed else Session.SAVED)


# A timed-out query: (rule, data last came, sent, partial frame, retire).
TIMED_OUT = [
    ("nothing came since it was sent", 1.0, 2.0, None, True),
    ("data came since", 3.0, 2.0, None, False),
    ("the stream stopped inside a frame", 3.0, 2.0, "inside a message", True),
]


@pytest.mark.parametrize(
    ("rule", "data", "sent", "partial", "retire"), TIMED_OUT, ids=[r[0] for r in TIMED_OUT]
)
def test_a_timeout_retires_a_silent_connection(
    rule: str, data: float, sent: float, partial: str | None, retire: bool
) -> None:
    c = conn(1, partial=partial)
    c.last_data = data
    assert policy().timed_out(c, sent) is retire


# The restart pause: (rule, attempt, deadline, now, pause).
PAUSES = [
    ("first: 50 ms", 0, 5.0, 0.0, 0.05),
    ("doubled", 1, 5.0, 0.0, 0.1),
    ("and again", 3, 5.0, 0.0, 0.4),
    ("exactly the time left", 2, 0.2, 0.0, 0.2),
    ("not past the deadline", 2, 0.19, 0.0, None),
]


@pytest.mark.parametrize(
    ("rule", "attempt", "deadline", "now", "pause"), PAUSES, ids=[r[0] for r in PAUSES]
)
def test_the_restart_pause_doubles_within_the_deadline(
    rule: str, attempt: int, deadline: float, now: float, pause: float | None
) -> None:
    got = restart_pause(attempt, deadline, now)
    assert got == (None if pause is None else pytest.approx(pause))


def test_closing_and_forgetting_every_connection() -> None:
    busy, idle, draining = conn(2), conn(0), conn(1, state=State.DRAINING)
    p = pooled(policy(connecting=True), busy, idle)
    p.draining.add(draining)
    assert set(p.close_all()) == {busy, idle, draining}
    assert not p.pool and not p.draining
    assert all(c.state is State.CLOSED for c in (busy, idle, draining))
    p = pooled(policy(connecting=True), busy)
    p.draining.add(draining)
    assert set(p.forget_all()) == {busy, draining} and not p.pool and not p.connecting


# A query that got no connection: (rule, connections opened before, error, restarting).
CONNECT_FAILURES = [
    ("refused by a server that served us: a restart", 1, ConnectError("refused"), True),
    ("lost in the handshake, the same", 1, ConnectionLost("reset"), True),
    ("refused by a server never reached: failing", 0, ConnectError("refused"), False),
    ("a TLS failure is no restart", 1, TLSError("alert"), False),
]


@pytest.mark.parametrize(
    ("rule", "opened", "error", "restarting"),
    CONNECT_FAILURES,
    ids=[r[0] for r in CONNECT_FAILURES],
)
def test_a_connect_failure_may_be_a_restart(
    rule: str, opened: int, error: DoTError, restarting: bool
) -> None:
    failure = policy(opened=opened).connect_failure(error)
    assert (failure.error, failure.restarting) == (error, restarting)
