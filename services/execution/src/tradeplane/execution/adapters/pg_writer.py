"""The Postgres fast path of the order hot path, on plain psycopg.

The group commit (SubmitOrder intents and venue acks) and the outbox sequencer run for every
order. Through SQLAlchemy each statement cost ~0.2 ms of CPU (compile cache, result proxies,
pool checkout and pre-ping, one span per statement) and a batch took ~12 statements: that was
most of the service's CPU per order. Both are serial loops (one flush at a time), so each owns
one psycopg connection (``PgLink``), and a batch is two round trips: its reads, then its
writes with COMMIT. Each round trip is ONE simple-protocol query holding several statements
(``BEGIN; ...; ...``), parameters bound client-side (psycopg's ``ClientCursor``): psycopg's
pipeline mode cost ~2x the client CPU for the same round trips (a wait and a flush per
statement). Same tables and the same locking as ``SqlTx`` (which SQLite keeps using); a
broken connection is reopened on the next use and its batch answered UNAVAILABLE (retryable).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import weakref
from binascii import b2a_base64
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import orjson
import psycopg
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult
from psycopg.rows import namedtuple_row
from psycopg.types.json import set_json_loads
from sqlalchemy.engine import URL

from tradeplane.execution.adapters import rows
from tradeplane.execution.adapters.pending_events import PendingEvents
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decimals import ZERO
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskLimits
from tradeplane.execution.domain.trading_state import GLOBAL, TradingState
from tradeplane.execution.domain.values import Side
from tradeplane.execution.service_layer.ports import EventEncoder
from tradeplane.runtime.errors import Unavailable

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[Any]

CONNECT_TIMEOUT_SECONDS = 5


def _columns_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"


BLOCK_COLUMNS = (
    "block_id",
    "account_id",
    "client_order_id",
    "product_id",
    "side",
    "type",
    "base_size",
    "price",
    "rule",
    "reason",
    "limit_value",
    "actual",
    "strategy_instance_id",
    "decision_id",
    "time_us",
)
DECISION_COLUMNS = (
    "decision_id",
    "strategy",
    "strategy_instance_id",
    "account_id",
    "product_id",
    "trace_id",
    "inputs",
    "reason",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_amount",
    "cost_currency",
    "create_time_us",
)
INSERT_BLOCK = _columns_sql("blocks", BLOCK_COLUMNS)
INSERT_DECISION = _columns_sql("decisions", DECISION_COLUMNS)
INSERT_ACCOUNT = (
    "INSERT INTO accounts (account_id, venue, display_name, valuation_currency, cash, "
    "peak_equity, daily_pnl_day, daily_pnl_amount, loss_streak_count, loss_streak_last_us, "
    "create_time_us) VALUES (%s, %s, %s, %s, %s, NULL, NULL, '0', 0, NULL, %s) "
    "ON CONFLICT (account_id) DO NOTHING"
)
# Locks in id order, so concurrent batches (and replicas) cannot deadlock; orders before
# accounts, the order of on_fill.
LOCK_ORDERS = "SELECT * FROM orders WHERE order_id = ANY(%(ids)s) ORDER BY order_id FOR UPDATE"
LOCK_ACCOUNTS = (
    "SELECT * FROM accounts WHERE account_id = ANY(%(ids)s) ORDER BY account_id FOR UPDATE"
)
# The orders already using the batch's client order ids (JSON, decoded by orjson).
KNOWN_ORDERS = """
SELECT coalesce(json_agg(o), '[]') AS known FROM orders o
  JOIN unnest(%(accounts)s::text[], %(client_ids)s::text[]) AS k(a, c)
    ON o.account_id = k.a AND o.client_order_id = k.c
"""
# The risk inputs of the locked accounts in one statement (JSON): the limits, the trading
# states (global and each account), the positions, the remaining base size of the working
# orders per (account, product, side) on every product, summed exactly (NUMERIC) from the
# deltas the orders trigger keeps (migration 0007) - not from the orders, which cost
# O(working orders) per batch - and which versions of the rows they come from (migration
# 0008), in the same snapshot: the service keeps them for the account's next batch
# (``PgTx.expect_risk_inputs``).
RISK_INPUTS = """
SELECT
  (SELECT coalesce(json_agg(json_build_array(account_id, limits)), '[]')
     FROM risk_limits WHERE account_id = ANY(%(ids)s)) AS limits,
  (SELECT coalesce(json_agg(json_build_array(scope_id, state)), '[]')
     FROM trading_states WHERE scope_id = ANY(%(scopes)s)) AS states,
  (SELECT coalesce(json_agg(p), '[]') FROM positions p
     WHERE account_id = ANY(%(ids)s)) AS positions,
  (SELECT coalesce(json_agg(json_build_array(account_id, product_id, side, remaining::text)), '[]')
     FROM (SELECT account_id, product_id, side, sum(delta) AS remaining
             FROM open_size_deltas
            WHERE account_id = ANY(%(ids)s)
            GROUP BY account_id, product_id, side) AS s) AS open_sizes,
  ARRAY(SELECT tp_risk_rows(a) FROM unnest(%(ids)s) WITH ORDINALITY AS u(a, n) ORDER BY n)
    AS risk_rows
"""
# A batch's writes in one statement: the new orders, the acknowledged ones and the outbox
# rows (txid filled by the column default: this transaction's id). The updated orders were
# committed by earlier transactions, so the two parts never touch the same row.
WRITE_BATCH = (
    """
WITH inserted AS (
  INSERT INTO orders SELECT * FROM json_populate_recordset(NULL::orders, %(new)s::json)
), updated AS (
  UPDATE orders o SET """
    + ", ".join(f"{k} = v.{k}" for k in rows.ORDER_MUTABLE)
    + """
    FROM json_populate_recordset(NULL::orders, %(changed)s::json) AS v
   WHERE o.order_id = v.order_id
)
INSERT INTO pending_events (time_us, account_id, event_type, payload)
SELECT (e->>0)::bigint, e->>1, e->>2, decode(e->>3, 'base64')
  FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS x(e, n)
 ORDER BY n
"""
)

# A venue ack in one statement, without reading the order first: each order moves from the
# state its intent committed (``expected``) to the acknowledged one (``changed``) only if its
# row is still exactly that (nothing else - a fill, a cancel - changed it meanwhile; a row
# locked by another transaction is re-checked once that one ends), and the OrderUpdated
# event of each order updated is added, in order. Returns the ids updated; the others take
# the locking path.
ACK_UNCHANGED = (
    """
WITH updated AS (
  UPDATE orders o SET """
    + ", ".join(f"{k} = v.{k}" for k in rows.ORDER_MUTABLE)
    + """
    FROM json_populate_recordset(NULL::orders, %(changed)s::json) AS v,
         json_populate_recordset(NULL::orders, %(expected)s::json) AS e
   WHERE o.order_id = v.order_id AND e.order_id = v.order_id
     AND ("""
    + ", ".join(f"o.{k}" for k in rows.ORDER_MUTABLE)
    + ") IS NOT DISTINCT FROM ("
    + ", ".join(f"e.{k}" for k in rows.ORDER_MUTABLE)
    + """)
  RETURNING o.order_id
), added AS (
  INSERT INTO pending_events (time_us, account_id, event_type, payload)
  SELECT (e->>0)::bigint, e->>1, e->>2, decode(e->>3, 'base64')
    FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS x(e, n)
   WHERE e->>4 IN (SELECT order_id FROM updated)
   ORDER BY n
)
SELECT coalesce(array_agg(order_id), '{}') AS acked FROM updated
"""
)


@dataclass(frozen=True)
class Prepared:
    """A statement the server prepares once per connection (``PREPARE``): its planning
    (~0.3 ms of the database's CPU for the statements here) is not repeated per batch.
    ``sql`` names its parameters ``%(name)s``; ``types`` gives each one's SQL type, in the
    order of the prepared statement's parameters."""

    name: str
    sql: str
    types: tuple[tuple[str, str], ...]

    @property
    def prepare(self) -> str:
        sql = self.sql
        for n, (param, _) in enumerate(self.types, 1):
            sql = sql.replace(f"%({param})s", f"${n}")
        assert "%(" not in sql, f"{self.name}: a parameter without a type"
        return f"PREPARE {self.name}({', '.join(t for _, t in self.types)}) AS {sql}"

    @property
    def execute(self) -> str:
        """``EXECUTE`` with the parameters as placeholders (bound client-side)."""
        return f"EXECUTE {self.name}({', '.join(f'%({p})s' for p, _ in self.types)})"

    def bind(self, params: Mapping[str, Any]) -> str:
        """``EXECUTE`` with ``params`` as literals (``literal``): what ``bind(conn,
        self.execute, params)`` makes, without psycopg's per-call query conversion."""
        return f"EXECUTE {self.name}({', '.join(literal(params[p]) for p, _ in self.types)})"


def literal(value: Any) -> str:
    """``value`` as an SQL literal, for the hot statements' parameters: None, bool, int, str
    and sequences of str (arrays). Hand-written rather than psycopg's ``mogrify``, whose
    query conversion and per-value dumpers cost 10-20 us per statement here against 1-4 us
    (~50 us per order when batches hold one order; measured on the 2-vCPU machine). The
    quoting is the one psycopg and libpq use with ``standard_conforming_strings`` on
    (checked when the connection opens: ``PgLink``), where a backslash in a string is an
    ordinary character. The literals are untyped: EXECUTE casts each to its prepared
    parameter's type."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))  # an int subclass (an enum) spells its number
    if isinstance(value, str):
        if "\x00" in value:
            # As psycopg: text cannot hold NUL (the statement would be cut there).
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return literal("{" + ",".join(_array_element(v) for v in value) + "}")
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _array_element(value: str | None) -> str:
    """One element of an array literal: quoted, with its quotes and backslashes escaped
    (array syntax), so commas, braces, spaces and the word NULL stay text."""
    if value is None:
        return "NULL"
    if not isinstance(value, str):
        raise TypeError(f"array elements are str here, not {type(value).__name__}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


P_LOCK_ORDERS = Prepared("tp_lock_orders", LOCK_ORDERS, (("ids", "text[]"),))
P_LOCK_ACCOUNTS = Prepared("tp_lock_accounts", LOCK_ACCOUNTS, (("ids", "text[]"),))
P_KNOWN_ORDERS = Prepared(
    "tp_known_orders", KNOWN_ORDERS, (("accounts", "text[]"), ("client_ids", "text[]"))
)
P_RISK_INPUTS = Prepared("tp_risk_inputs", RISK_INPUTS, (("ids", "text[]"), ("scopes", "text[]")))
# The accounts locked (in id order) and the check that their kept risk inputs are still
# current (migration 0008; raises serialization_failure otherwise).
P_EXPECT_INPUTS = Prepared(
    "tp_expect_inputs",
    "SELECT tp_expect_risk_inputs(%(ids)s, %(risk_rows)s, %(open_sizes)s) AS checked",
    (("ids", "text[]"), ("risk_rows", "text[]"), ("open_sizes", "json")),
)
P_WRITE_BATCH = Prepared(
    "tp_write_batch",
    WRITE_BATCH,
    (
        ("new", "text"),
        ("changed", "text"),
        ("events", "text"),
    ),
)
P_ACK_UNCHANGED = Prepared(
    "tp_ack_unchanged",
    ACK_UNCHANGED,
    (
        ("changed", "text"),
        ("expected", "text"),
        ("events", "text"),
    ),
)
GROUP_COMMIT_STATEMENTS = (
    P_LOCK_ORDERS,
    P_LOCK_ACCOUNTS,
    P_KNOWN_ORDERS,
    P_RISK_INPUTS,
    P_EXPECT_INPUTS,
    P_WRITE_BATCH,
    P_ACK_UNCHANGED,
)
# How the group commit's connections plan their statements: once per connection (a generic
# plan), not per call. Planning was ~40% of the database's CPU per order (0.2-0.4 ms per
# EXECUTE of these statements, a write or an ack running in 0.1-0.2 ms). Every statement
# here finds rows by a key (order id, account id, client order id...), so scans and joins
# are held to index lookups and nested loops: a plan made while a table was small (a new
# database) stays right as it grows - no sequential scan or hash of a whole table. A new
# ANALYZE (autovacuum) invalidates the plans and they are made again with its statistics.
# No JIT: a plan that must still scan a whole table (the sequencer's fold of the open-size
# deltas) carries the disabled scan's huge cost estimate, and JIT-compiling it took 90-360 ms
# of the database's CPU each time (order latency rose for the next ~200 orders).
KEYED_PLANS = (
    "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off"
    " -c enable_hashjoin=off -c enable_mergejoin=off -c jit=off"
)


def planned_per_call(bound: str) -> list[str]:
    """A bound EXECUTE planned for its own parameters, in a transaction (``SET LOCAL``); the
    statements after it are planned once again. For KNOWN_ORDERS: two indexes of ``orders``
    lead with the account (the client order id's unique one, and the one by time), and a
    plan made on an empty table may pick either - the wrong one walks the account's orders
    until an ANALYZE. Planning this small join costs ~0.1 ms."""
    return [
        "SET LOCAL plan_cache_mode = force_custom_plan",
        bound,
        "SET LOCAL plan_cache_mode TO DEFAULT",  # the session's: KEYED_PLANS
    ]


class _Row:
    """A JSON object read as a row (attribute access, as rows.* expects)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def conninfo(url: URL) -> str:
    """libpq connection string of a SQLAlchemy Postgres URL (any driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class KeptInputsRejected(Exception):
    """A batch decided on kept risk inputs was not written: they changed meanwhile, or one of
    its client order ids is in use (a retry, which the reads would have found). Nothing of
    it was written; decide again on fresh reads."""


@dataclass(slots=True)
class BatchInputs:
    """What one group-commit batch reads before deciding: the acknowledged orders and the
    accounts (both locked), and the risk inputs of those accounts."""

    orders: dict[str, Order] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    known: dict[tuple[str, str], Order] = field(default_factory=dict)  # by client order id
    limits: dict[str, RiskLimits] = field(default_factory=dict)
    states: dict[str, TradingState] = field(default_factory=dict)  # GLOBAL and each account
    positions: dict[str, list[Position]] = field(default_factory=dict)
    open_sizes: dict[tuple[str, str], tuple[Decimal, Decimal]] = field(default_factory=dict)
    # Postgres: each account's ``tp_risk_rows`` as the inputs were read (migration 0008).
    risk_rows: dict[str, str] = field(default_factory=dict)


class PgLink:
    """One psycopg connection for one serial user, opened on first use and reopened after it
    broke (the database restarted): the batch that found it broken gets UNAVAILABLE.

    The connection is in autocommit mode: a transaction is the ``BEGIN`` its user sends
    with its first statements and ends with the ``COMMIT`` sent with its last ones; a lone
    query (several statements in one string included) is a transaction of its own."""

    def __init__(
        self,
        url: URL,
        application_name: str,
        prepared: Sequence[Prepared] = (),
        options: str = "",
    ) -> None:
        self._conninfo = conninfo(url)
        self._application_name = application_name
        self._prepared = prepared
        self._options = options  # server settings of the session (libpq ``options``)
        self._conn: Conn | None = None
        # Its users are serial; this keeps it so (one transaction at a time on the connection).
        self._lock = asyncio.Lock()

    async def _connection(self) -> Conn:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            await self.close()
        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=self._application_name,
                autocommit=True,
                client_encoding="utf8",  # results() sends queries as UTF-8
                options=self._options,
                cursor_factory=psycopg.AsyncClientCursor,
                row_factory=namedtuple_row,  # attribute access, as rows.* expects
            )
            set_json_loads(orjson.loads, self._conn)
            if self._conn.pgconn.parameter_status(b"standard_conforming_strings") != b"on":
                # literal() quotes for it (the default since PostgreSQL 9.1).
                await self.close()
                raise RuntimeError(
                    "the database has standard_conforming_strings off; the order path "
                    "needs it on (ALTER DATABASE ... SET standard_conforming_strings = on)"
                )
            if self._prepared:
                await results(self._conn, [p.prepare for p in self._prepared])
            _WATCHES[self._conn] = _SocketWatch(self._conn)
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            watch = _WATCHES.pop(conn, None)
            if watch is not None:
                watch.stop()
            with contextlib.suppress(Exception):
                await conn.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """The connection for one unit of work. A transaction its user left open is committed
        when the block returns and rolled back (or the connection dropped, when its state is
        unknown) when it raises."""
        async with self._lock, self._transaction() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        try:
            conn = await self._connection()
        except psycopg.OperationalError as exc:
            raise Unavailable("database unavailable") from exc
        try:
            yield conn
            if conn.info.transaction_status is not TransactionStatus.IDLE:
                await conn.execute("COMMIT")
        except BaseException as exc:
            if isinstance(exc, Exception) and not (conn.closed or conn.broken):
                try:
                    if conn.info.transaction_status is not TransactionStatus.IDLE:
                        await conn.execute("ROLLBACK")
                except Exception:
                    await self.close()
            else:
                # Cancelled mid-statement (shutdown), or the connection broke: the protocol
                # state is unknown; closing it rolls the transaction back on the server.
                await self.close()
            if isinstance(exc, psycopg.errors.FeatureNotSupported):
                # "cached plan must not change result type": a migration changed a table
                # under a prepared statement; the next connection prepares it again.
                await self.close()
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                raise Unavailable("database unavailable") from exc
            raise


async def results(conn: Conn, statements: Sequence[str]) -> list[list[Any]]:
    """Run ``statements`` as one query (one round trip) and return the rows of each
    statement that returns rows, in order (named tuples, values loaded by the connection's
    adapters).

    On libpq directly (``psycopg.pq``), not through a cursor: the cursor's machinery (prepare
    manager, result bookkeeping, a wait per state) cost 80-100 us of CPU per query here, this
    ~35 (measured on the 2-vCPU machine); the group commit and the sequencer run several
    queries per batch of orders. The query is sent whole (libpq's simple protocol): an error
    aborts the statements after it, and is raised as psycopg's exception for its SQLSTATE
    once every result was read (the connection is then ready for ROLLBACK)."""
    pgconn = conn.pgconn
    pgconn.send_query("; ".join(statements).encode())
    loop = asyncio.get_running_loop()
    fileno = pgconn.socket
    while pgconn.flush():  # the rest of a large query when the socket buffer was full
        await _ready(loop, fileno, write=True)
    watch = _WATCHES.get(conn)
    if watch is not None and watch.loop is not loop:
        watch = None  # registered on another event loop (tests): wait the plain way
    found: list[PGresult] = []
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                if watch is None:
                    return _rows(conn, found, Transformer(conn))
                # Watched while idle, also when no wait above registered it again.
                watch.arm()
                return _rows(conn, found, watch.transformer)
            found.append(result)
        if watch is not None:
            await watch.readable()
        else:
            await _ready(loop, fileno, write=False)


class _SocketWatch:
    """A connection's socket left registered with the event loop between round trips
    (``PgLink``): registering and removing a reader per round trip cost 5 system calls
    (uvloop makes a poll handle per registration) and ~15-25 us of CPU per query, several
    queries per order. ``readable`` and the end of each round trip (``arm``) register it
    again, in case it is gone (a psycopg call on the connection, e.g.
    ``conn.execute("ROLLBACK")``, takes the socket over and removes it; a round trip whose
    answer was there at once never waits): registering over a live registration swaps the
    callback, no system call. Data that arrives while nobody waits (a notice, the server
    closing the connection) is read into libpq at once, so the level-triggered poll does not
    spin; once the connection has failed the watch ends. Also keeps one ``Transformer`` (the
    loaders) for the connection's results, as a psycopg cursor does."""

    def __init__(self, conn: Conn) -> None:
        self.loop = asyncio.get_running_loop()
        self.transformer = Transformer(conn)
        self._pgconn = conn.pgconn
        self._fileno = conn.pgconn.socket
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            return
        try:
            self._pgconn.consume_input()
        except Exception:  # closed by the server: its next user finds out
            self.stop()

    def arm(self) -> None:
        """Register the socket (again: a psycopg call on the connection may have removed
        it); a swap of the callback while it still is."""
        self.loop.add_reader(self._fileno, self._wake)

    async def readable(self) -> None:
        self.arm()
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # the loop may be closed already (tests)
            self.loop.remove_reader(self._fileno)


_WATCHES: weakref.WeakKeyDictionary[Conn, _SocketWatch] = weakref.WeakKeyDictionary()


async def _ready(loop: asyncio.AbstractEventLoop, fileno: int, *, write: bool) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fileno, wake)
    else:
        loop.add_reader(fileno, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fileno)
        else:
            loop.remove_reader(fileno)


def _rows(conn: Conn, found: Sequence[PGresult], transformer: Transformer) -> list[list[Any]]:
    out: list[list[Any]] = []
    for result in found:
        status = result.status
        if status == ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
        if status == ExecStatus.TUPLES_OK:
            transformer.set_pgresult(result)
            names = tuple((result.fname(i) or b"").decode() for i in range(result.nfields))
            out.append(transformer.load_rows(0, result.ntuples, _row_type(names)))
    return out


@functools.lru_cache(512)
def _row_type(names: tuple[str, ...]) -> Callable[[Sequence[Any]], Any]:
    """A named tuple maker per column list (attribute access, as rows.* expects)."""
    row: Any = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
    return cast(Callable[[Sequence[Any]], Any], row._make)


def bind(conn: Conn, sql: str, params: Any) -> str:
    """``sql`` with its parameters bound as literals (psycopg's client-side binding)."""
    return cast(psycopg.AsyncClientCursor[Any], conn.cursor()).mogrify(sql, params)


class PgTx(PendingEvents):
    """The group commit's unit of work on Postgres: ``BEGIN`` and the reads of a batch in one
    round trip (``batch_inputs``), its writes kept and sent with ``COMMIT`` in another
    (``finish``). Or, for a batch decided on risk inputs kept from the accounts' last batch,
    one round trip: venue acks riding along (``ack_first``), the account locks and the check
    that those inputs are still current (``expect_risk_inputs``), the writes and ``COMMIT``."""

    def __init__(self, conn: Conn, encode: EventEncoder) -> None:
        super().__init__()
        self.conn = conn
        self._encode = encode
        self._begun = False
        self.written = 0  # events written by ack_unchanged
        self._new: list[dict[str, Any]] = []
        self._changed: list[dict[str, Any]] = []
        # Blocks, decisions: rare statements, bound by psycopg (``bind``); the prepared hot
        # ones by ``Prepared.bind``.
        self._rare: list[str] = []
        self._expected: str | None = None
        self._acks: list[tuple[Order, Order]] = []
        self.acked: set[str] = set()  # by ack_first, once finished

    def expect_risk_inputs(self, inputs: BatchInputs) -> None:
        """Instead of ``batch_inputs``: the batch decides on ``inputs`` kept from the accounts'
        last batch, and ``finish``'s round trip first locks the accounts and checks that
        these are still their inputs - the same row versions (``risk_rows``), the same
        remaining sizes - or raises ``KeptInputsRejected`` and writes nothing."""
        assert not self._begun, "instead of batch_inputs, not after"
        ids = sorted(inputs.risk_rows)
        sizes = []
        for (account_id, product_id), (buy, sell) in inputs.open_sizes.items():
            sizes += [[account_id, product_id, Side.BUY.value, str(buy)]] if buy else []
            sizes += [[account_id, product_id, Side.SELL.value, str(sell)]] if sell else []
        self._expected = P_EXPECT_INPUTS.bind(
            {
                "ids": ids,
                "risk_rows": [inputs.risk_rows[a] for a in ids],
                "open_sizes": orjson.dumps(sizes).decode(),
            }
        )

    def ack_first(self, pairs: Sequence[tuple[Order, Order]]) -> None:
        """With ``expect_risk_inputs``: ``ack_unchanged``'s statement for these venue acks
        rides first in ``finish``'s round trip (the order rows before the accounts, the lock
        order of on_fill), in the same transaction; ``acked`` then holds the ids it updated.
        The events added so far are the pairs' (one each, in order), the ones added after
        the batch's other writes'."""
        assert not self._acks and len(self.events) == len(pairs)
        self._acks = list(pairs)

    def _begin(self) -> list[str]:
        """``BEGIN`` for the first round trip of the transaction."""
        if self._begun:
            return []
        self._begun = True
        return ["BEGIN"]

    async def ensure_account(self, account: Account) -> None:
        insert = bind(
            self.conn,
            INSERT_ACCOUNT,
            (
                account.account_id,
                account.venue.value,
                account.display_name,
                account.valuation_currency,
                rows.cash_json(account.cash),
                rows.to_us(account.create_time),
            ),
        )
        await results(self.conn, [*self._begin(), insert])

    async def batch_inputs(
        self,
        order_ids: Sequence[str],
        account_ids: Sequence[str],
        keys: Sequence[tuple[str, str]],
        pairs: Sequence[tuple[str, str]],
    ) -> BatchInputs:
        """Lock the acknowledged orders and the accounts (in that order), then read what the
        risk checks need; one round trip. Each statement of the query starts after the
        previous one finished, with a snapshot of its own (READ COMMITTED), so the reads see
        whatever was committed before the locks were granted."""
        ids = sorted(account_ids)
        statements = self._begin()
        if order_ids:
            statements.append(P_LOCK_ORDERS.bind({"ids": sorted(order_ids)}))
        if ids:
            statements.append(P_LOCK_ACCOUNTS.bind({"ids": ids}))
            statements += planned_per_call(
                P_KNOWN_ORDERS.bind(
                    {"accounts": [a for a, _ in keys], "client_ids": [c for _, c in keys]}
                )
            )
            statements.append(P_RISK_INPUTS.bind({"ids": ids, "scopes": [GLOBAL, *ids]}))
        found = await results(self.conn, statements)
        out = BatchInputs()
        if order_ids:
            out.orders = {r.order_id: rows.row_order(r) for r in found.pop(0)}
        if not ids:
            return out
        out.accounts = {r.account_id: rows.row_account(r) for r in found[0]}
        for o in found[1][0].known:
            order = rows.row_order(_Row(o))
            out.known[(order.spec.account_id, order.spec.client_order_id)] = order
        r = found[2][0]
        out.limits = {a: RiskLimits(a) for a in ids}
        for account_id, limits in r.limits:
            out.limits[account_id] = rows.json_limits(account_id, limits)
        out.states = dict.fromkeys([GLOBAL, *ids], TradingState.ACTIVE)
        for scope_id, state in r.states:
            out.states[scope_id] = TradingState(state)
        out.risk_rows = dict(zip(ids, r.risk_rows, strict=True))
        out.positions = {a: [] for a in ids}
        for p in r.positions:
            out.positions[p["account_id"]].append(rows.row_position(_Row(p)))
        # Every product with working orders (a batch's other products have none).
        out.open_sizes = dict.fromkeys(pairs, (ZERO, ZERO))
        for account_id, product_id, side, remaining in r.open_sizes:
            key = (account_id, product_id)
            buy, sell = out.open_sizes.get(key, (ZERO, ZERO))
            amount = Decimal(remaining)
            out.open_sizes[key] = (
                (buy + amount, sell) if side == Side.BUY.value else (buy, sell + amount)
            )
        return out

    def _events_json(
        self, order_ids: Sequence[str] = (), first: int = 0, last: int | None = None
    ) -> str:
        """The outbox rows (of the events ``first:last``) as one JSON parameter,
        [time_us, account, type, base64 payload, order id]: binding one string costs a
        fraction of binding four arrays element by element (the largest client cost of a
        batch after the round trips)."""
        events = self.events[first:last]
        ids = order_ids or [""] * len(events)
        payloads = self._payloads(self._encode, first, last)
        return orjson.dumps(
            [
                [
                    rows.to_us(t),
                    e.account_id,
                    e.type.value,
                    b2a_base64(p, newline=False).decode(),
                    o,
                ]
                for (e, t), p, o in zip(events, payloads, ids, strict=True)
            ]
        ).decode()

    # Writes are kept, and sent with the outbox rows and COMMIT in one round trip.

    async def insert_orders(self, orders: Sequence[Order]) -> None:
        self._new += [rows.order_row(o) for o in orders]

    async def update_orders(self, orders: Sequence[Order]) -> None:
        self._changed += [_mutable_row(o) for o in orders]

    async def insert_blocks(self, blocks: Sequence[Block]) -> None:
        self._rare += [
            bind(self.conn, INSERT_BLOCK, _values(rows.block_row(b), BLOCK_COLUMNS)) for b in blocks
        ]

    async def insert_decisions(self, decisions: Sequence[Decision]) -> None:
        self._rare += [
            bind(self.conn, INSERT_DECISION, _values(rows.decision_row(d), DECISION_COLUMNS))
            for d in decisions
        ]

    async def finish(self) -> int:
        """Send the writes, the outbox rows and COMMIT in one round trip; returns how many
        events were written."""
        statements = []
        acks = self._acks
        if self._expected is not None:
            statements += self._begin()
            if acks:
                statements.append(self._ack_statement(acks))
            statements.append(self._expected)
        statements += self._rare
        if self._new or self._changed or len(self.events) > len(acks):
            statements.append(
                P_WRITE_BATCH.bind(
                    {
                        "new": orjson.dumps(self._new).decode(),
                        "changed": orjson.dumps(self._changed).decode(),
                        "events": self._events_json(first=len(acks)),
                    }
                )
            )
        if self._begun:
            statements.append("COMMIT")  # the locks taken by batch_inputs end here
        # (Without a BEGIN the statements of one query are one transaction anyway.)
        if statements:
            try:
                found = await results(self.conn, statements)
            except (psycopg.errors.SerializationFailure, psycopg.errors.UniqueViolation) as exc:
                if self._expected is None:
                    raise
                raise KeptInputsRejected(str(exc)) from exc
            if acks:
                self.acked = set(found[0][0].acked)
        return len(self.events)

    async def ack_unchanged(self, pairs: Sequence[tuple[Order, Order]]) -> set[str]:
        """Move each order from ``expected`` to ``acked`` if its row is still ``expected``,
        with the events added for them (one per pair, in the same order), in one statement
        that is its own transaction (no BEGIN: nothing is read first). Returns the ids of the
        orders updated."""
        assert not self._begun and len(self.events) == len(pairs)
        found = await results(self.conn, [self._ack_statement(pairs)])
        acked = set(found[0][0].acked)
        self.written = len(acked)
        return acked

    def _ack_statement(self, pairs: Sequence[tuple[Order, Order]]) -> str:
        """ACK_UNCHANGED for the pairs, with the first ``len(pairs)`` events."""
        return P_ACK_UNCHANGED.bind(
            {
                "changed": _mutable_json([a for _, a in pairs]),
                "expected": _mutable_json([e for e, _ in pairs]),
                "events": self._events_json([a.order_id for _, a in pairs], 0, len(pairs)),
            }
        )


def _mutable_row(order: Order) -> dict[str, Any]:
    return {"order_id": order.order_id, **rows.order_mutable_row(order)}


def _mutable_json(orders: Sequence[Order]) -> str:
    return orjson.dumps([_mutable_row(o) for o in orders]).decode()


def _values(row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[c] for c in columns)
