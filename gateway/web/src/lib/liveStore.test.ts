// Unit tests of the live view's merge rules (node:test; `npm test` compiles them with tsc).
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_ROWS, emptyLive, liveReducer, type LiveState } from "./liveStore.js";
import type { Fill, Order } from "./types";

const order = (id: string, status: string, updateTime: string): Order => ({
  orderId: id,
  status,
  updateTime,
  productId: "BTC-USD",
});
const fill = (id: string, time = "2026-01-01T00:00:00Z"): Fill => ({ fillId: id, time, price: "1", size: "1" });
const poll = (over: Partial<Extract<Parameters<typeof liveReducer>[1], { type: "poll" }>> = {}) => ({
  type: "poll" as const,
  orders: [],
  fills: [],
  positions: [],
  portfolios: [],
  blocks: [],
  ...over,
});

test("the same fill from an event, a poll and a snapshot is kept once", () => {
  let s: LiveState = liveReducer(emptyLive, { type: "events", events: [{ fill: fill("f1") }] });
  s = liveReducer(s, poll({ fills: [fill("f1"), fill("f2")] }));
  s = liveReducer(s, { type: "snapshot", snapshot: { recentFills: [fill("f2")] } });
  assert.deepEqual(Object.keys(s.fills).sort(), ["f1", "f2"]);
});

test("an older version of an order never replaces a newer one", () => {
  let s = liveReducer(emptyLive, {
    type: "events",
    events: [{ orderUpdated: order("o1", "ORDER_STATUS_FILLED", "2026-01-01T00:00:02Z") }],
  });
  // A poll answered before the fill arrives late, still saying "open".
  s = liveReducer(s, poll({ orders: [order("o1", "ORDER_STATUS_OPEN", "2026-01-01T00:00:01Z")] }));
  assert.equal(s.orders.o1.status, "ORDER_STATUS_FILLED");
  s = liveReducer(s, { type: "orders", orders: [order("o1", "ORDER_STATUS_NEW", "2026-01-01T00:00:00Z")] });
  assert.equal(s.orders.o1.status, "ORDER_STATUS_FILLED");
});

test("a snapshot drops orders we held as open that are no longer open", () => {
  let s = liveReducer(emptyLive, {
    type: "events",
    events: [
      { orderSubmitted: order("gone", "ORDER_STATUS_OPEN", "2026-01-01T00:00:00Z") },
      { orderUpdated: order("done", "ORDER_STATUS_FILLED", "2026-01-01T00:00:00Z") },
    ],
  });
  s = liveReducer(s, {
    type: "snapshot",
    snapshot: { openOrders: [order("still", "ORDER_STATUS_OPEN", "2026-01-01T00:00:01Z")] },
  });
  assert.deepEqual(Object.keys(s.orders).sort(), ["done", "still"]);
});

test("a position at zero quantity is removed; polled positions replace the set", () => {
  const pos = (q: string, t: string) => ({ accountId: "a", productId: "BTC-USD", quantity: q, updateTime: t });
  let s = liveReducer(emptyLive, { type: "events", events: [{ positionUpdate: pos("1", "2026-01-01T00:00:00Z") }] });
  assert.equal(Object.keys(s.positions).length, 1);
  s = liveReducer(s, { type: "events", events: [{ positionUpdate: pos("0", "2026-01-01T00:00:01Z") }] });
  assert.equal(Object.keys(s.positions).length, 0);
  s = liveReducer(s, { type: "events", events: [{ positionUpdate: pos("2", "2026-01-01T00:00:02Z") }] });
  s = liveReducer(s, poll({ positions: [] }));
  assert.equal(Object.keys(s.positions).length, 0);
});

test("tables are bounded, keeping the newest rows", () => {
  const fills = Array.from({ length: MAX_ROWS + 50 }, (_, i) =>
    fill(`f${i}`, new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString()),
  );
  const s = liveReducer(emptyLive, poll({ fills }));
  assert.equal(Object.keys(s.fills).length, MAX_ROWS);
  assert.ok(s.fills[`f${MAX_ROWS + 49}`]);
  assert.ok(!s.fills.f0);
});

test("the global trading state follows events; account-level changes do not override it", () => {
  let s = liveReducer(emptyLive, { type: "snapshot", snapshot: { tradingState: "TRADING_STATE_ACTIVE" } });
  s = liveReducer(s, { type: "events", events: [{ tradingStateChanged: { accountId: "a", state: "TRADING_STATE_HALTED" } }] });
  assert.equal(s.tradingState, "TRADING_STATE_ACTIVE");
  s = liveReducer(s, { type: "events", events: [{ tradingStateChanged: { state: "TRADING_STATE_HALTED" } }] });
  assert.equal(s.tradingState, "TRADING_STATE_HALTED");
});
