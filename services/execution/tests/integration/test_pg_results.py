"""``pg_writer.results``: one query of several statements on libpq directly - the rows of
each statement that returns rows, values loaded by the connection's adapters, and a failing
statement raised as psycopg's exception for its SQLSTATE with the connection left usable."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tradeplane.execution.adapters.pg_writer import PgLink, results
from tradeplane.testing.isolation import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio]


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
