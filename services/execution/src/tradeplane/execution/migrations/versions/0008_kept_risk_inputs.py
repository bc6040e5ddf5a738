"""kept risk inputs: a batch of orders decided on inputs it did not read again

A batch of SubmitOrder intents reads its accounts' risk inputs (the account row, its risk
limits, the trading states, its positions, its working orders' remaining sizes) under the
account lock, decides in Python, then writes: two round trips. The service keeps what the
account's last batch read, with that batch's own orders counted; the next batch decides on
that and sends its writes after one check, in one round trip. ``tp_expect_risk_inputs``
locks the accounts (in id order, as the reads do) and raises ``serialization_failure`` unless
the inputs are still those:

- the rows they come from are the same row versions - ``tp_risk_rows``: their ``xmin`` (the
  transaction that last wrote each; an update, even to the same values, changes it), as read
  in the same snapshot as the inputs (a fill, a risk limit, the kill switch change them);
- the remaining sizes are the expected ones - compared as numbers with the sums of
  ``open_size_deltas`` (which the outbox sequencer folds without changing a sum): a cancel,
  a fill, another replica's orders change them.

The service then reads the inputs again. On SQLite (one writer, embedded) every batch reads.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# '' is the global trading state's scope (domain.trading_state.GLOBAL); '-' a row not there.
# PL/pgSQL: its queries are planned once per session (a LANGUAGE sql function's body is
# planned again on every call of the query calling it: ~0.3 ms here).
RISK_ROWS = """
CREATE FUNCTION tp_risk_rows(account text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN concat_ws('|',
    coalesce((SELECT xmin::text FROM accounts WHERE account_id = account), '-'),
    coalesce((SELECT xmin::text FROM risk_limits WHERE account_id = account), '-'),
    coalesce((SELECT string_agg(scope_id || ':' || xmin::text, ',' ORDER BY scope_id)
                FROM trading_states WHERE scope_id IN ('', account)), '-'),
    coalesce((SELECT string_agg(product_id || ':' || xmin::text, ',' ORDER BY product_id)
                FROM positions WHERE account_id = account), '-'));
END
$$
"""
# open_sizes: [[account, product, side, remaining], ...] (zeros may be left out).
EXPECT = """
CREATE FUNCTION tp_expect_risk_inputs(ids text[], risk_rows text[], open_sizes json)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM accounts WHERE account_id = ANY(ids) ORDER BY account_id FOR UPDATE;
  -- One query, so one snapshot, taken once the locks are held.
  IF EXISTS (SELECT 1 FROM unnest(ids, risk_rows) AS k(account, expected)
              WHERE tp_risk_rows(k.account) IS DISTINCT FROM k.expected)
     OR EXISTS (
       WITH actual AS (
         SELECT account_id::text, product_id::text, side::text, sum(delta) AS remaining
           FROM open_size_deltas WHERE account_id = ANY(ids)
          GROUP BY 1, 2, 3 HAVING sum(delta) <> 0
       ), expected AS (
         SELECT e->>0, e->>1, e->>2, (e->>3)::numeric FROM json_array_elements(open_sizes) AS e
          WHERE (e->>3)::numeric <> 0
       )
       (SELECT * FROM actual EXCEPT ALL SELECT * FROM expected)
       UNION ALL
       (SELECT * FROM expected EXCEPT ALL SELECT * FROM actual)
     ) THEN
    RAISE EXCEPTION 'the risk inputs changed since they were read'
      USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN true;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(RISK_ROWS)
    op.execute(EXPECT)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION tp_expect_risk_inputs(text[], text[], json)")
    op.execute("DROP FUNCTION tp_risk_rows(text)")
