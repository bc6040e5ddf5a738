// The live view's state: orders, fills, positions, portfolios and blocks merged from three
// sources — the WebSocket snapshot, WebSocket events and polled JSON API pages — without
// duplicates. Everything is keyed (orders by orderId, fills by fillId, positions by account and
// product, blocks by blockId) and a record never replaces a newer version of itself, so the
// same update arriving twice, or a poll answer older than an event, changes nothing.
import type { Block, Fill, LiveEvent, LiveSnapshot, Order, Portfolio, Position } from "./types";

export const MAX_ROWS = 200; // every table is bounded; older rows fall off

export interface LiveState {
  orders: Record<string, Order>;
  fills: Record<string, Fill>;
  positions: Record<string, Position>;
  portfolios: Record<string, Portfolio>;
  blocks: Record<string, Block>;
  tradingState?: string;
}

export const emptyLive: LiveState = { orders: {}, fills: {}, positions: {}, portfolios: {}, blocks: {} };

export type LiveAction =
  | { type: "snapshot"; snapshot: LiveSnapshot }
  | { type: "events"; events: LiveEvent[] }
  | { type: "orders"; orders: Order[] }
  | {
      type: "poll";
      orders: Order[];
      fills: Fill[];
      positions: Position[];
      portfolios: Portfolio[];
      blocks: Block[];
      tradingState?: string;
    };

const OPEN_STATUSES = new Set(["ORDER_STATUS_NEW", "ORDER_STATUS_OPEN", "ORDER_STATUS_PARTIALLY_FILLED"]);

export function isOpenOrder(o: Order): boolean {
  return OPEN_STATUSES.has(o.status ?? "");
}

const positionKey = (p: Position) => `${p.accountId ?? ""}|${p.productId ?? ""}`;

function ts(iso?: string): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

function newer<T>(prev: T | undefined, next: T, time: (x: T) => string | undefined): boolean {
  return prev === undefined || ts(time(next)) >= ts(time(prev));
}

function upsertOrder(map: Record<string, Order>, o: Order): void {
  if (newer(map[o.orderId], o, (x) => x.updateTime ?? x.createTime)) map[o.orderId] = o;
}

function upsertPosition(map: Record<string, Position>, p: Position): void {
  const key = positionKey(p);
  if (!newer(map[key], p, (x) => x.updateTime)) return;
  if (Number(p.quantity ?? "0") === 0) delete map[key];
  else map[key] = p;
}

function upsertPortfolio(map: Record<string, Portfolio>, p: Portfolio): void {
  const key = p.accountId ?? "";
  if (newer(map[key], p, (x) => x.asOf)) map[key] = p;
}

/** Keep the newest `MAX_ROWS` entries of a keyed table. */
function bound<T>(map: Record<string, T>, time: (x: T) => string | undefined): Record<string, T> {
  const keys = Object.keys(map);
  if (keys.length <= MAX_ROWS) return map;
  const kept = keys.sort((a, b) => ts(time(map[b])) - ts(time(map[a]))).slice(0, MAX_ROWS);
  return Object.fromEntries(kept.map((k) => [k, map[k]]));
}

function finish(s: LiveState): LiveState {
  return {
    ...s,
    orders: bound(s.orders, (o) => o.updateTime ?? o.createTime),
    fills: bound(s.fills, (f) => f.time),
    blocks: bound(s.blocks, (b) => b.time),
  };
}

export function liveReducer(state: LiveState, action: LiveAction): LiveState {
  const s: LiveState = {
    orders: { ...state.orders },
    fills: { ...state.fills },
    positions: { ...state.positions },
    portfolios: { ...state.portfolios },
    blocks: { ...state.blocks },
    tradingState: state.tradingState,
  };
  switch (action.type) {
    case "snapshot": {
      const snap = action.snapshot;
      // The snapshot lists every open order: one we hold as open but the snapshot lacks has
      // finished meanwhile; drop it (its final state arrives as an event or the next poll).
      const openIds = new Set((snap.openOrders ?? []).map((o) => o.orderId));
      for (const [id, o] of Object.entries(s.orders)) if (isOpenOrder(o) && !openIds.has(id)) delete s.orders[id];
      for (const o of snap.openOrders ?? []) upsertOrder(s.orders, o);
      s.positions = {};
      for (const p of snap.positions ?? []) upsertPosition(s.positions, p);
      for (const p of snap.portfolios ?? []) s.portfolios[p.accountId ?? ""] = p;
      for (const f of snap.recentFills ?? []) s.fills[f.fillId] = f;
      for (const b of snap.recentBlocks ?? []) s.blocks[b.blockId] = b;
      if (snap.tradingState) s.tradingState = snap.tradingState;
      return finish(s);
    }
    case "events": {
      for (const e of action.events) {
        if (e.orderSubmitted) upsertOrder(s.orders, e.orderSubmitted);
        if (e.orderUpdated) upsertOrder(s.orders, e.orderUpdated);
        if (e.fill) s.fills[e.fill.fillId] = e.fill;
        if (e.positionUpdate) upsertPosition(s.positions, e.positionUpdate);
        if (e.portfolioUpdate) upsertPortfolio(s.portfolios, e.portfolioUpdate);
        if (e.tradeBlocked) s.blocks[e.tradeBlocked.blockId] = e.tradeBlocked;
        if (e.tradingStateChanged && !e.tradingStateChanged.accountId) s.tradingState = e.tradingStateChanged.state;
      }
      return finish(s);
    }
    case "orders": {
      // Recent order history (the snapshot carries only open orders).
      for (const o of action.orders) upsertOrder(s.orders, o);
      return finish(s);
    }
    case "poll": {
      for (const o of action.orders) upsertOrder(s.orders, o);
      for (const f of action.fills) s.fills[f.fillId] = f;
      // The positions page is the complete current set: replace, keeping newer event versions.
      const positions: Record<string, Position> = {};
      for (const p of action.positions) upsertPosition(positions, p);
      for (const [k, p] of Object.entries(s.positions)) {
        if (positions[k] && ts(p.updateTime) > ts(positions[k].updateTime)) positions[k] = p;
      }
      s.positions = positions;
      for (const p of action.portfolios) upsertPortfolio(s.portfolios, p);
      for (const b of action.blocks) s.blocks[b.blockId] = b;
      if (action.tradingState) s.tradingState = action.tradingState;
      return finish(s);
    }
  }
}

export function sortedByTime<T>(map: Record<string, T>, time: (x: T) => string | undefined): T[] {
  return Object.values(map).sort((a, b) => ts(time(b)) - ts(time(a)));
}
