// Live trading monitor: orders, fills, positions, portfolio summary and blocked trades, fed by
// `/ws/live` (CHANNEL_LIVE) and, while the socket is down, by polling the JSON API.
import { useCallback, useEffect, useReducer, useState } from "react";
import { api, errorText } from "../lib/api";
import { emptyLive, isOpenOrder, liveReducer, sortedByTime } from "../lib/liveStore";
import { canTrade } from "../lib/scopes";
import { GatewaySocket, type SocketState } from "../lib/socket";
import { fmtEnum, fmtMoney, fmtNum, fmtPct, fmtTime } from "../lib/format";
import type { Block, Fill, LiveEvent, LiveSnapshot, Order, Portfolio, Position } from "../lib/types";
import { ConfirmButton, ErrorBox, Table, type Column } from "./common";

const POLL_MS = 2_000;
const PAGE = 50; // rows per polled list: no view fetches unbounded data
// Grace period before polling when the socket has never been up (avoids a flash of "polling").
const FIRST_CONNECT_GRACE_MS = 1_500;

export type Connection = "websocket" | "polling" | "offline" | "connecting";

export const CONNECTION_LABEL: Record<Connection, string> = {
  websocket: "Live (WebSocket)",
  polling: "Live (polling)",
  offline: "Offline",
  connecting: "Connecting…",
};

async function pollOnce() {
  const [orders, fills, positions, blocks, accounts, trading] = await Promise.all([
    api.get<{ orders?: Order[] }>("/api/live/orders", { page_size: PAGE }),
    api.get<{ fills?: Fill[] }>("/api/live/fills", { page_size: PAGE }),
    api.get<{ positions?: Position[] }>("/api/live/positions", { page_size: 100 }),
    api.get<{ blocks?: Block[] }>("/api/live/blocks", { page_size: PAGE }),
    api.get<{ accounts?: { accountId: string }[] }>("/api/live/accounts", { page_size: 20 }),
    api.get<{ globalState?: string }>("/api/live/trading-state"),
  ]);
  const portfolios = await Promise.all(
    (accounts.accounts ?? []).map((a) =>
      api.get<{ portfolio?: Portfolio }>("/api/live/portfolio", { account_id: a.accountId }),
    ),
  );
  return {
    type: "poll" as const,
    orders: orders.orders ?? [],
    fills: fills.fills ?? [],
    positions: positions.positions ?? [],
    blocks: blocks.blocks ?? [],
    portfolios: portfolios.flatMap((p) => (p.portfolio ? [p.portfolio] : [])),
    tradingState: trading.globalState,
  };
}

export function LiveView() {
  const [state, dispatch] = useReducer(liveReducer, emptyLive);
  const [loaded, setLoaded] = useState(false);
  const [socketState, setSocketState] = useState<SocketState>("connecting");
  const [socketDetail, setSocketDetail] = useState("");
  const [synced, setSynced] = useState(false); // socket open and its snapshot applied
  const [pollOk, setPollOk] = useState<boolean | null>(null);
  const [pollError, setPollError] = useState<string>();
  const [actionError, setActionError] = useState<string>();
  const [graceOver, setGraceOver] = useState(false);

  useEffect(() => {
    const socket = new GatewaySocket(
      "/ws/live",
      {
        onState: (s, detail) => {
          setSocketState(s);
          setSocketDetail(detail);
          if (s !== "open") setSynced(false);
        },
        onSnapshot: (frame) => {
          const live = frame.live as LiveSnapshot | undefined;
          if (live) dispatch({ type: "snapshot", snapshot: live });
          setLoaded(true);
          setSynced(true);
        },
        onData: (frame) => {
          const live = frame.live as { events?: LiveEvent[] } | undefined;
          if (live?.events?.length) dispatch({ type: "events", events: live.events });
          setSynced(true); // a resume replays events without a snapshot
        },
        onResumed: () => setSynced(true), // caught up from our cursor; nothing was lost
        onError: (message) => setSocketDetail(message),
      },
      true,
    );
    // The snapshot lists open orders only: load one page of recent ones (any status) as well.
    api
      .get<{ orders?: Order[] }>("/api/live/orders", { page_size: PAGE })
      .then((r) => dispatch({ type: "orders", orders: r.orders ?? [] }))
      .catch(() => undefined); // the snapshot or polling will show what is reachable
    socket.subscribe({ subscriptionId: "live", channel: "CHANNEL_LIVE" });
    socket.start();
    const grace = window.setTimeout(() => setGraceOver(true), FIRST_CONNECT_GRACE_MS);
    return () => {
      window.clearTimeout(grace);
      socket.stop();
    };
  }, []);

  // Polling fallback: runs only while the socket is not delivering.
  const polling = !synced && (graceOver || socketState === "closed");
  useEffect(() => {
    if (!polling) return;
    let cancelled = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        const action = await pollOnce();
        if (cancelled) return;
        dispatch(action);
        setLoaded(true);
        setPollOk(true);
        setPollError(undefined);
      } catch (err) {
        if (cancelled) return;
        setPollOk(false);
        setPollError(errorText(err));
      }
      if (!cancelled) timer = window.setTimeout(tick, POLL_MS);
    };
    void tick();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [polling]);

  const connection: Connection = synced
    ? "websocket"
    : pollOk === true
      ? "polling"
      : pollOk === false
        ? "offline"
        : socketState === "closed"
          ? "offline"
          : "connecting";

  const trade = canTrade();
  const act = useCallback(async (fn: () => Promise<unknown>) => {
    setActionError(undefined);
    try {
      await fn();
    } catch (err) {
      setActionError(errorText(err));
      throw err;
    }
  }, []);

  const orders = loaded ? sortedByTime(state.orders, (o) => o.updateTime ?? o.createTime) : undefined;
  const fills = loaded ? sortedByTime(state.fills, (f) => f.time) : undefined;
  const positions = loaded ? sortedByTime(state.positions, (p) => p.updateTime) : undefined;
  const blocks = loaded ? sortedByTime(state.blocks, (b) => b.time) : undefined;
  const portfolios = Object.values(state.portfolios);
  const halted = state.tradingState === "TRADING_STATE_HALTED";

  const orderColumns: Column<Order>[] = [
    { title: "Time", render: (o) => fmtTime(o.updateTime ?? o.createTime) },
    { title: "Client id", render: (o) => o.clientOrderId ?? o.orderId.slice(0, 8) },
    { title: "Product", render: (o) => o.productId },
    { title: "Side", render: (o) => <span className={sideClass(o.side)}>{fmtEnum(o.side, "SIDE_")}</span> },
    { title: "Type", render: (o) => fmtEnum(o.type, "ORDER_TYPE_") },
    { title: "Size", render: (o) => fmtNum(o.baseSize || o.quoteSize), numeric: true },
    { title: "Limit", render: (o) => fmtNum(o.limitPrice), numeric: true },
    { title: "Filled", render: (o) => fmtNum(o.filledSize), numeric: true },
    { title: "Avg price", render: (o) => fmtNum(o.averageFillPrice), numeric: true },
    { title: "Status", render: (o) => <span title={o.statusReason}>{fmtEnum(o.status, "ORDER_STATUS_")}</span> },
    {
      title: "",
      render: (o) =>
        trade && isOpenOrder(o) ? (
          <ConfirmButton
            label="Cancel"
            question={`Cancel order ${o.clientOrderId ?? o.orderId} (${fmtEnum(o.side, "SIDE_")} ${o.baseSize ?? ""} ${o.productId ?? ""})?`}
            confirmLabel="Cancel order"
            danger
            onConfirm={() => act(() => api.post(`/api/live/orders/${encodeURIComponent(o.orderId)}/cancel`, {}))}
          />
        ) : null,
    },
  ];
  const fillColumns: Column<Fill>[] = [
    { title: "Time", render: (f) => fmtTime(f.time) },
    { title: "Client id", render: (f) => f.clientOrderId ?? "—" },
    { title: "Product", render: (f) => f.productId },
    { title: "Side", render: (f) => <span className={sideClass(f.side)}>{fmtEnum(f.side, "SIDE_")}</span> },
    { title: "Price", render: (f) => fmtNum(f.price), numeric: true },
    { title: "Size", render: (f) => fmtNum(f.size), numeric: true },
    { title: "Fee", render: (f) => (f.fee ? `${fmtNum(f.fee.amount, 6)} ${f.fee.currency ?? ""}` : "—"), numeric: true },
    { title: "Liquidity", render: (f) => fmtEnum(f.liquidity, "LIQUIDITY_") },
  ];
  const positionColumns: Column<Position>[] = [
    { title: "Account", render: (p) => p.accountId },
    { title: "Product", render: (p) => p.productId },
    { title: "Quantity", render: (p) => fmtNum(p.quantity), numeric: true },
    { title: "Entry", render: (p) => fmtNum(p.averageEntryPrice), numeric: true },
    { title: "Mark", render: (p) => fmtNum(p.markPrice), numeric: true },
    { title: "Notional", render: (p) => fmtMoney(p.notional), numeric: true },
    { title: "Unrealized", render: (p) => <Pnl value={p.unrealizedPnl} />, numeric: true },
    { title: "Realized", render: (p) => <Pnl value={p.realizedPnl} />, numeric: true },
  ];
  const blockColumns: Column<Block>[] = [
    { title: "Time", render: (b) => fmtTime(b.time) },
    { title: "Client id", render: (b) => b.clientOrderId ?? "—" },
    { title: "Product", render: (b) => b.productId },
    { title: "Side", render: (b) => fmtEnum(b.side, "SIDE_") },
    { title: "Size", render: (b) => fmtNum(b.baseSize), numeric: true },
    { title: "Rule", render: (b) => fmtEnum(b.rule, "RISK_RULE_") },
    { title: "Reason", render: (b) => b.reason },
  ];

  return (
    <section className="view live">
      <div className="toolbar">
        <ConnectionBadge connection={connection} detail={polling ? pollError ?? socketDetail : socketDetail} />
        <span className={`trading-state ${halted ? "halted" : ""}`} data-testid="trading-state">
          Trading: {fmtEnum(state.tradingState, "TRADING_STATE_")}
        </span>
        <span className="spacer" />
        {trade &&
          (halted ? (
            <ConfirmButton
              label="Resume trading"
              question="Resume trading on every account?"
              confirmLabel="Resume trading"
              onConfirm={() =>
                act(() =>
                  api.post("/api/live/trading-state", {
                    allAccounts: true,
                    state: "TRADING_STATE_ACTIVE",
                    reason: "resumed from the web UI",
                  }),
                )
              }
            />
          ) : (
            <ConfirmButton
              label="Kill switch"
              question="Halt trading on every account and cancel all working orders?"
              confirmLabel="Halt trading"
              danger
              onConfirm={() => act(() => api.post("/api/live/kill-switch", { reason: "kill switch from the web UI" }))}
            />
          ))}
      </div>
      {actionError && <ErrorBox error={actionError} />}
      <h2>Portfolio</h2>
      <PortfolioSummary portfolios={loaded ? portfolios : undefined} />
      <h2>Positions</h2>
      <Table testId="positions" what="positions" columns={positionColumns} rows={positions} rowKey={(p) => `${p.accountId}|${p.productId}`} empty="No open positions." error={pollError} />
      <h2>Orders</h2>
      <Table testId="orders" what="orders" columns={orderColumns} rows={orders} rowKey={(o) => o.orderId} empty="No orders yet." error={pollError} />
      <h2>Fills</h2>
      <Table testId="fills" what="fills" columns={fillColumns} rows={fills} rowKey={(f) => f.fillId} empty="No fills yet." error={pollError} />
      <h2>Blocked trades</h2>
      <Table testId="blocks" what="blocked trades" columns={blockColumns} rows={blocks} rowKey={(b) => b.blockId} empty="No trades blocked by risk." error={pollError} />
    </section>
  );
}

function ConnectionBadge({ connection, detail }: { connection: Connection; detail: string }) {
  return (
    <span className={`badge conn-${connection}`} data-testid="connection" title={detail}>
      <span className="dot" /> {CONNECTION_LABEL[connection]}
    </span>
  );
}

function PortfolioSummary({ portfolios }: { portfolios: Portfolio[] | undefined }) {
  if (portfolios === undefined) return <div className="state loading">Loading portfolio…</div>;
  if (portfolios.length === 0) return <div className="state empty">No accounts.</div>;
  return (
    <div className="cards" data-testid="portfolio">
      {portfolios.map((p) => {
        const ccy = p.valuationCurrency || "USD";
        return (
          <div className="card" key={p.accountId}>
            <div className="card-title">
              {p.accountId} <small>as of {fmtTime(p.asOf)}</small>
            </div>
            <dl>
              <dt>Equity</dt>
              <dd>{fmtMoney(p.equity, ccy)}</dd>
              <dt>Cash</dt>
              <dd>{(p.cash ?? []).map((c) => fmtMoney(c.amount, c.currency || ccy)).join(", ") || "—"}</dd>
              <dt>Unrealized P&amp;L</dt>
              <dd>
                <Pnl value={p.unrealizedPnl} currency={ccy} />
              </dd>
              <dt>Realized P&amp;L</dt>
              <dd>
                <Pnl value={p.realizedPnl} currency={ccy} />
              </dd>
              <dt>Today realized</dt>
              <dd>
                <Pnl value={p.dailyRealizedPnl} currency={ccy} />
              </dd>
              <dt>Gross / net exposure</dt>
              <dd>
                {fmtMoney(p.grossExposure, ccy)} / {fmtMoney(p.netExposure, ccy)}
              </dd>
              <dt>Fees</dt>
              <dd>{fmtMoney(p.feesPaid, ccy)}</dd>
              <dt>Drawdown</dt>
              <dd>{fmtPct(p.drawdown)}</dd>
              <dt>Open positions / orders</dt>
              <dd>
                {p.openPositionCount ?? 0} / {p.openOrderCount ?? 0}
              </dd>
            </dl>
          </div>
        );
      })}
    </div>
  );
}

function Pnl({ value, currency }: { value?: string; currency?: string }) {
  const n = Number(value ?? 0);
  return <span className={n > 0 ? "pos" : n < 0 ? "neg" : undefined}>{currency ? fmtMoney(value ?? "0", currency) : fmtNum(value ?? "0", 2)}</span>;
}

function sideClass(side?: string): string | undefined {
  return side === "SIDE_BUY" ? "buy" : side === "SIDE_SELL" ? "sell" : undefined;
}
