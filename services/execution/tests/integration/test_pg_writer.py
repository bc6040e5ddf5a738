"""The Postgres hot path's plumbing (``adapters/pg_writer.py``) on a real server.

``results``: one query of several statements on libpq directly - the rows of each statement
that returns rows, values loaded by the connection's adapters, and a failing statement raised
as psycopg's exception for its SQLSTATE with the connection left usable.

``literal`` / ``Prepared.bind``: hostile text (quotes, backslashes, braces, commas, the word
NULL, newlines, non-ASCII) comes back from the server unchanged, as text and as array
elements; NUL is refused as psycopg refuses it; and a bound EXECUTE means what psycopg's
binding of the same statement means.

``KEYED_PLANS``: the group commit's and the sequencer's statements are planned once per
connection; a plan made while the tables were empty (a new database) finds rows through
indexes, so it stays right once they hold thousands of rows."""

from __future__ import annotations

import asyncio
import enum

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tradeplane.execution.adapters.pg_writer import (
    GROUP_COMMIT_STATEMENTS,
    KEYED_PLANS,
    P_ACK_UNCHANGED,
    P_KNOWN_ORDERS,
    P_LOCK_ACCOUNTS,
    P_LOCK_ORDERS,
    P_RISK_INPUTS,
    P_WRITE_BATCH,
    PgLink,
    bind,
    literal,
    planned_per_call,
    results,
)
from tradeplane.execution.adapters.sql_store import P_MOVE_READY
from tradeplane.execution.migrations import MIGRATIONS_DIR
from tradeplane.runtime.db import run_migrations
from tradeplane.testing.isolation import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio]


HOSTILE = [
    "",
    "plain",
    "it's",
    "''",
    "\\",
    "back\\slash' OR '1'='1",
    "a\\'b",
    '"quoted"',
    "{brace},comma",
    "NULL",
    "null",
    " spaced ",
    "line\nbreak\ttab\r",
    "$$dollar$$",
    "E'\\x41'",
    "\\x41",
    "unicode: é ü 中文 🙂",
    "--comment",
    "); DROP TABLE orders; --",
]


async def test_literals_come_back_unchanged(postgres_url: str) -> None:
    with postgres_database(postgres_url) as url:
        link = PgLink(make_url(url), "test")
        try:
            async with link.transaction() as conn:
                texts = [f"SELECT {literal(v)}::text AS v" for v in HOSTILE]
                arrays = [
                    f"SELECT {literal(HOSTILE)}::text[] AS v",
                    f"SELECT {literal(['a', None, 'NULL'])}::text[] AS v",
                    f"SELECT {literal([])}::text[] AS v",
                    f"SELECT {literal(())}::text[] AS v",
                    f"SELECT {literal(None)}::text AS v, {literal(True)}::bool AS t, "
                    f"{literal(False)}::bool AS f, {literal(-42)}::bigint AS n",
                ]
                found = await results(conn, texts + arrays)
            assert [rows[0].v for rows in found[: len(HOSTILE)]] == HOSTILE
            whole, nulls, empty, empty_tuple, scalars = found[len(HOSTILE) :]
            assert whole[0].v == HOSTILE
            assert nulls[0].v == ["a", None, "NULL"]
            assert empty[0].v == [] and empty_tuple[0].v == []
            (row,) = scalars
            assert (row.v, row.t, row.f, row.n) == (None, True, False, -42)
        finally:
            await link.close()


async def test_a_database_without_standard_conforming_strings_is_refused(
    postgres_url: str,
) -> None:
    """literal() quotes for standard_conforming_strings on; with it off a backslash would be
    an escape, so the connection is refused with the fix named."""
    with postgres_database(postgres_url) as url:
        name = make_url(url).database
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(f'ALTER DATABASE "{name}" SET standard_conforming_strings = off')
        link = PgLink(make_url(url), "test")
        try:
            with pytest.raises(RuntimeError, match="standard_conforming_strings = on"):
                async with link.transaction():
                    pass
        finally:
            await link.close()


class Level(enum.IntEnum):
    A = 1
    B = 2


async def test_literal_spells_an_int_subclass_as_its_number() -> None:
    assert literal(Level.B) == "2" and literal(-7) == "-7"


async def test_literal_refuses_nul_and_unknown_types() -> None:
    with pytest.raises(psycopg.DataError, match="NUL"):
        literal("a\x00b")
    with pytest.raises(psycopg.DataError, match="NUL"):
        literal(["ok", "a\x00b"])
    with pytest.raises(TypeError, match="float"):
        literal(1.5)
    with pytest.raises(TypeError, match="int"):
        literal(["a", 1])


async def test_prepared_bind_means_what_psycopg_binding_means(postgres_url: str) -> None:
    """Each group-commit read bound both ways, with accounts and trading states whose ids
    are the hostile strings: the same rows (the hostile ids found, nothing else)."""
    with postgres_database(postgres_url) as url:
        run_migrations(url, MIGRATIONS_DIR)
        link = PgLink(make_url(url), "test", GROUP_COMMIT_STATEMENTS)
        ids = [v for v in HOSTILE if v]  # an account id is never empty
        params = {
            P_LOCK_ORDERS: {"ids": HOSTILE},
            P_LOCK_ACCOUNTS: {"ids": ids},
            P_KNOWN_ORDERS: {"accounts": ids, "client_ids": ids[::-1]},
            P_RISK_INPUTS: {"ids": ids, "scopes": ids},
        }
        try:
            async with link.transaction() as conn:
                setup = ["BEGIN"]
                for n, v in enumerate(ids):
                    setup.append(
                        bind(
                            conn,
                            "INSERT INTO accounts (account_id, venue, display_name, "
                            "valuation_currency, cash, daily_pnl_amount, loss_streak_count, "
                            "create_time_us) VALUES (%s, 'paper', %s, 'USD', '{}', '0', 0, %s)",
                            (v, v, n),
                        )
                    )
                    setup.append(
                        bind(
                            conn,
                            "INSERT INTO trading_states VALUES (%s, 'HALTED', 'ACTIVE', %s, "
                            "'test', 0, %s)",
                            (v, v, n),
                        )
                    )
                await results(conn, [*setup, "COMMIT"])
                for statement, values in params.items():
                    ours, theirs = await results(
                        conn,
                        [
                            "BEGIN",
                            statement.bind(values),
                            bind(conn, statement.execute, values),
                            "ROLLBACK",
                        ],
                    )
                    assert ours == theirs, statement.name
                    if statement is P_LOCK_ACCOUNTS:
                        assert sorted(r.account_id for r in ours) == sorted(ids)
                    if statement is P_RISK_INPUTS:
                        assert sorted(s for s, _ in ours[0].states) == sorted(ids)
        finally:
            await link.close()


async def test_rows_of_each_statement_in_order_with_types(postgres_url: str) -> None:
    with postgres_database(postgres_url) as url:
        link = PgLink(make_url(url), "test")
        try:
            async with link.transaction() as conn:
                found = await results(
                    conn,
                    [
                        "BEGIN",
                        "CREATE TEMP TABLE t (id int, note text)",
                        "INSERT INTO t VALUES (1, 'a'), (2, NULL)",
                        "SELECT id, note FROM t ORDER BY id",
                        "SELECT json_build_object('x', 1.5) AS doc, ARRAY['p', 'q'] AS tags",
                        "COMMIT",
                    ],
                )
            assert [(r.id, r.note) for r in found[0]] == [(1, "a"), (2, None)]
            (row,) = found[1]
            assert row.doc == {"x": 1.5} and row.tags == ["p", "q"]
            assert len(found) == 2
        finally:
            await link.close()


async def test_the_socket_watch_survives_psycopg_calls_and_a_closed_connection(
    postgres_url: str,
) -> None:
    """The link's socket stays registered between round trips; a psycopg call on the
    connection (which takes the socket over and unregisters it) does not leave the next
    query waiting forever; a connection the server closes while idle stops being watched
    (no busy loop on a readable dead socket) and, known to be broken, is replaced on its
    next use."""
    with postgres_database(postgres_url) as url:
        link = PgLink(make_url(url), "test")
        try:
            async with link.transaction() as conn:
                (first,) = await results(conn, ["SELECT pg_backend_pid() AS pid"])
                await conn.execute("SELECT 1")  # psycopg's own wait on the socket
                async with asyncio.timeout(5):
                    (again,) = await results(conn, ["SELECT pg_backend_pid() AS pid"])
                fileno = conn.pgconn.socket
                # Registered again after the round trip, whether or not it waited.
                # (asyncio's loop, as in these tests: True if a reader was registered.)
                assert asyncio.get_running_loop().remove_reader(fileno)
                await results(conn, ["SELECT 1"])
            assert again[0].pid == first[0].pid
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (first[0].pid,))
            for _ in range(500):  # the server's goodbye reaches the idle socket
                await asyncio.sleep(0.01)
                if conn.broken:
                    break
            assert conn.broken
            assert not asyncio.get_running_loop().remove_reader(fileno)  # no longer watched
            async with link.transaction() as conn:
                (rows,) = await results(conn, ["SELECT pg_backend_pid() AS pid"])
            assert rows[0].pid != first[0].pid
        finally:
            await link.close()


async def test_a_failing_statement_raises_its_error_and_skips_the_rest(
    postgres_url: str,
) -> None:
    with postgres_database(postgres_url) as url:
        link = PgLink(make_url(url), "test")
        try:
            async with link.transaction() as conn:
                await results(conn, ["CREATE TABLE u (id int PRIMARY KEY)"])
            with pytest.raises(psycopg.errors.UniqueViolation, match="duplicate key"):
                async with link.transaction() as conn:
                    await results(
                        conn,
                        [
                            "BEGIN",
                            "INSERT INTO u VALUES (1)",
                            "INSERT INTO u VALUES (1)",
                            "INSERT INTO u VALUES (2)",
                        ],
                    )
            # The transaction was rolled back (nothing of it stays) and the link still works.
            async with link.transaction() as conn:
                (rows,) = await results(conn, ["SELECT count(*) AS n FROM u"])
            assert rows[0].n == 0
        finally:
            await link.close()


PARAMS = {
    P_LOCK_ORDERS: {"ids": ["o-1"]},
    P_LOCK_ACCOUNTS: {"ids": ["a"]},
    P_KNOWN_ORDERS: {"accounts": ["a"], "client_ids": ["c-20000"]},
    P_RISK_INPUTS: {"ids": ["a"], "scopes": ["", "a"]},
    P_WRITE_BATCH: {"new": "[]", "changed": '[{"order_id": "o-1"}]', "events": "[]"},
    P_ACK_UNCHANGED: {"changed": '[{"order_id": "o-1"}]', "expected": "[]", "events": "[]"},
    P_MOVE_READY: {"lock": 1, "batch": 2000},
}
# What a plan must never do: read a whole table (a sequential scan, or a hash or merge join
# fed by one) - a generic plan made on empty tables could otherwise do it for ever.
WHOLE_TABLE = ("Seq Scan on orders", "Seq Scan on pending_events", "Hash Join", "Merge Join")
ORDERS = """
INSERT INTO orders (order_id, account_id, client_order_id, fingerprint, venue, venue_order_id,
    product_id, side, type, time_in_force, base_size, post_only, status, filled_size,
    filled_quote, fees, fee_currency, fill_count, status_reason, parent_order_id,
    strategy_instance_id, decision_id, external, create_time_us, update_time_us)
SELECT 'o-' || n, 'a', 'c-' || n, 'f', 'PAPER', 'v-' || n, 'BTC-USD', 'BUY', 'LIMIT', 'GTC',
    '1', false, 'OPEN', '0', '0', '0', 'USD', 0, '', '', '', '', false, n, n
FROM generate_series(1, 20000) AS n
"""


async def plans(link: PgLink) -> dict[str, str]:
    out = {}
    async with link.transaction() as conn:
        for statement, params in PARAMS.items():
            explain = bind(conn, f"EXPLAIN {statement.execute}", params)
            read = planned_per_call(explain) if statement is P_KNOWN_ORDERS else [explain]
            (rows,) = await results(conn, ["BEGIN", *read, "ROLLBACK"])
            out[statement.name] = "\n".join(r[0] for r in rows)
    return out


async def test_plans_made_on_empty_tables_use_indexes_as_they_grow(postgres_url: str) -> None:
    with postgres_database(postgres_url) as url:
        run_migrations(url, MIGRATIONS_DIR)
        link = PgLink(make_url(url), "test", [*GROUP_COMMIT_STATEMENTS, P_MOVE_READY], KEYED_PLANS)
        try:
            empty = await plans(link)  # planned now, on empty tables, and kept
            async with link.transaction() as conn:
                await results(conn, [ORDERS])
            grown = await plans(link)
            async with link.transaction() as conn:
                mode, jit = await results(conn, ["SHOW plan_cache_mode", "SHOW jit"])
            assert mode[0][0] == "force_generic_plan"  # the empty tables' plans were kept
            # A plan that must scan a whole table (disabled, so estimated at ~1e10) is not
            # JIT-compiled: that took 90-360 ms per run of the sequencer's fold.
            assert jit[0][0] == "off"
            for name, plan in [*empty.items(), *grown.items()]:
                for whole in WHOLE_TABLE:
                    assert whole not in plan, f"{name}: {whole}\n{plan}"
            assert "Index Scan using pk_orders" in grown["tp_ack_unchanged"]
            # A client order id is found by its unique index, not by walking the account's orders.
            assert "uq_orders_account_client_order_id" in grown["tp_known_orders"]
        finally:
            await link.close()
