// Backtests: list, launch form with live progress (`/ws/live` CHANNEL_BACKTEST_PROGRESS), and
// playback of a run: candles with trade markers and indicators, equity and drawdown curves, a
// time scrubber showing the run's state (cash, positions, open orders) at that bar, statistics.
import { useCallback, useEffect, useRef, useState } from "react";
import { AreaSeries, LineSeries, createChart, type UTCTimestamp } from "lightweight-charts";
import { api, errorText } from "../lib/api";
import { mergeIndicators } from "../lib/paging";
import { fmtDateTime, fmtEnum, fmtMoney, fmtNum, fmtPct, fmtTime } from "../lib/format";
import { GatewaySocket } from "../lib/socket";
import type { Candle, IndicatorSeries, Product } from "../lib/types";
import { CandleChart, chartOptions, type Marker } from "./CandleChart";
import { Empty, ErrorBox, Loading, Table } from "./common";

interface Backtest {
  backtestId: string;
  config?: {
    strategy?: string;
    params?: Record<string, string>;
    productId?: string;
    interval?: string;
    timeRange?: { start?: string; end?: string };
    initialCash?: string;
  };
  status?: string;
  progress?: number;
  statistics?: Record<string, number | string>;
  error?: string;
  createTime?: string;
}
interface StrategyDef {
  name: string;
  displayName?: string;
  parameters?: { name: string; defaultValue?: string; description?: string }[];
}
interface TradeMarker {
  time: string;
  side?: string;
  price?: string;
  size?: string;
  kind?: string;
  label?: string;
  orderId?: string;
}
interface PlaybackState {
  time?: string;
  barIndex?: string;
  cash?: string;
  equity?: string;
  realizedPnl?: string;
  drawdown?: number;
  positions?: { productId?: string; quantity?: string; averageEntryPrice?: string; unrealizedPnl?: string }[];
  openOrders?: { orderId?: string; side?: string; type?: string; size?: string; limitPrice?: string; status?: string }[];
  recentFills?: TradeMarker[];
}
interface EquityPoint {
  time: string;
  equity?: string;
  drawdown?: number;
}

const LIST_PAGE = 20;
const PLAYBACK_PAGE = 500; // candles per request; more pages load as the chart or scrubber nears the end
const TRADES_PAGE = 50;
const EQUITY_POINTS = 400;

export function BacktestsView() {
  const [list, setList] = useState<Backtest[]>();
  const [error, setError] = useState<string>();
  const [selected, setSelected] = useState<string | undefined>(() => window.location.hash.split("/")[2]);
  const [compare, setCompare] = useState<string[]>([]);
  const toggleCompare = (id: string) =>
    setCompare((cur) => (cur.includes(id) ? cur.filter((x) => x !== id) : [...cur, id].slice(-2)));

  const load = useCallback(() => {
    api
      .get<{ backtests?: Backtest[] }>("/api/backtests", { page_size: LIST_PAGE })
      .then((r) => {
        setError(undefined);
        setList(r.backtests ?? []);
      })
      .catch((err) => setError(errorText(err)));
  }, []);
  useEffect(load, [load]);

  const select = (id: string) => {
    setSelected(id);
    window.history.replaceState(null, "", `#/backtests/${id}`);
  };

  return (
    <section className="view backtests">
      <LaunchForm onLaunched={load} onDone={(id) => (load(), select(id))} />
      <h2>Runs</h2>
      <Table
        testId="backtests"
        what="backtests"
        rows={list}
        rowKey={(b) => b.backtestId}
        empty="No backtests yet: launch one above."
        error={error}
        retry={load}
        columns={[
          {
            title: "A/B",
            render: (b) => (
              <input
                type="checkbox"
                aria-label={`Compare ${b.backtestId}`}
                data-testid="compare-check"
                checked={compare.includes(b.backtestId)}
                onChange={() => toggleCompare(b.backtestId)}
              />
            ),
          },
          {
            title: "Created",
            render: (b) => (
              <a className="clickable" onClick={() => select(b.backtestId)} data-testid="open-backtest">
                {fmtTime(b.createTime)}
              </a>
            ),
          },
          { title: "Strategy", render: (b) => b.config?.strategy },
          { title: "Product", render: (b) => b.config?.productId },
          { title: "Interval", render: (b) => fmtEnum(b.config?.interval, "CANDLE_INTERVAL_") },
          { title: "Status", render: (b) => fmtEnum(b.status, "RUN_STATUS_") },
          { title: "Return", render: (b) => fmtPct(b.statistics?.totalReturn), numeric: true },
          { title: "Max DD", render: (b) => fmtPct(b.statistics?.maxDrawdown), numeric: true },
          { title: "Trades", render: (b) => String(b.statistics?.tradeCount ?? "—"), numeric: true },
          {
            title: "",
            render: (b) => (
              <button type="button" onClick={() => select(b.backtestId)}>
                {b.backtestId === selected ? "Shown" : "Play back"}
              </button>
            ),
          },
        ]}
      />
      {compare.length === 2 ? (
        <Compare key={compare.join("|")} a={compare[0]} b={compare[1]} />
      ) : (
        compare.length === 1 && <p className="note">Tick a second run to compare it with the first.</p>
      )}
      <Sweeps onPlay={select} />
      {selected && <Playback key={selected} backtestId={selected} />}
    </section>
  );
}

function LaunchForm({ onLaunched, onDone }: { onLaunched: () => void; onDone: (id: string) => void }) {
  const [strategies, setStrategies] = useState<StrategyDef[]>();
  const [products, setProducts] = useState<Product[]>([]);
  const [strategy, setStrategy] = useState("");
  const [productId, setProductId] = useState("");
  const [interval, setInterval] = useState("CANDLE_INTERVAL_ONE_MINUTE");
  const [hours, setHours] = useState(6);
  const [params, setParams] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();
  const [running, setRunning] = useState<{ id: string; progress: number; message?: string }>();

  useEffect(() => {
    Promise.all([
      api.get<{ strategies?: StrategyDef[] }>("/api/backtests/strategies"),
      api.get<{ products?: Product[] }>("/api/market/products", { page_size: 100 }),
    ])
      .then(([s, p]) => {
        setStrategies(s.strategies ?? []);
        setProducts(p.products ?? []);
        setStrategy((cur) => cur || s.strategies?.[0]?.name || "");
        setProductId((cur) => cur || p.products?.[0]?.productId || "");
      })
      .catch((err) => setError(errorText(err)));
  }, []);

  const def = strategies?.find((s) => s.name === strategy);
  useEffect(() => {
    setParams(Object.fromEntries((def?.parameters ?? []).map((p) => [p.name, p.defaultValue ?? ""])));
  }, [def]);

  // Live progress of the launched run.
  useEffect(() => {
    if (!running?.id) return;
    const id = running.id;
    const onProgress = (frame: Record<string, unknown>) => {
      const p = frame.progress as { progress?: number; status?: string; message?: string } | undefined;
      if (!p) return;
      setRunning({ id, progress: p.progress ?? 0, message: fmtEnum(p.status, "RUN_STATUS_") });
      if (p.status && ["RUN_STATUS_COMPLETED", "RUN_STATUS_FAILED", "RUN_STATUS_CANCELED", "RUN_STATUS_CANCELLED"].includes(p.status)) {
        onDone(id);
      }
    };
    const socket = new GatewaySocket("/ws/live", { onSnapshot: onProgress, onData: onProgress }, true);
    socket.subscribe({ subscriptionId: `progress-${id}`, channel: "CHANNEL_BACKTEST_PROGRESS", targetId: id });
    socket.start();
    return () => socket.stop();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [running?.id]);

  const launch = async () => {
    setError(undefined);
    const end = new Date(Date.now() - 60_000);
    const start = new Date(end.getTime() - hours * 3600_000);
    try {
      const r = await api.post<{ backtestId: string }>("/api/backtests", {
        config: {
          strategy,
          productId,
          interval,
          params,
          initialCash: "10000",
          timeRange: { start: start.toISOString(), end: end.toISOString() },
        },
      });
      setRunning({ id: r.backtestId, progress: 0, message: "queued" });
      onLaunched();
    } catch (err) {
      setError(errorText(err));
    }
  };

  if (!strategies) return error ? <ErrorBox error={error} /> : <Loading what="strategies" />;
  return (
    <div className="form" data-testid="launch-form">
      <label>
        Strategy
        <select value={strategy} onChange={(e) => setStrategy(e.target.value)}>
          {strategies.map((s) => (
            <option key={s.name} value={s.name}>
              {s.displayName ?? s.name}
            </option>
          ))}
        </select>
      </label>
      {(def?.parameters ?? []).map((p) => (
        <label key={p.name} title={p.description}>
          {p.name}
          <input size={8} value={params[p.name] ?? ""} onChange={(e) => setParams({ ...params, [p.name]: e.target.value })} />
        </label>
      ))}
      <label>
        Product
        <select value={productId} onChange={(e) => setProductId(e.target.value)}>
          {products.map((p) => (
            <option key={p.productId}>{p.productId}</option>
          ))}
        </select>
      </label>
      <label>
        Interval
        <select value={interval} onChange={(e) => setInterval(e.target.value)}>
          <option value="CANDLE_INTERVAL_ONE_MINUTE">1m</option>
          <option value="CANDLE_INTERVAL_FIVE_MINUTES">5m</option>
          <option value="CANDLE_INTERVAL_ONE_HOUR">1h</option>
        </select>
      </label>
      <label>
        Last hours
        <input type="number" min={1} max={24 * 30} value={hours} onChange={(e) => setHours(Number(e.target.value))} />
      </label>
      <button type="button" className="primary" onClick={launch}>
        Run backtest
      </button>
      {running && (
        <span data-testid="progress">
          <progress max={1} value={running.progress} /> {Math.round(running.progress * 100)}% {running.message}
        </span>
      )}
      {error && <ErrorBox error={error} />}
    </div>
  );
}

type PlaybackPage = { candles?: Candle[]; indicators?: IndicatorSeries[]; markers?: TradeMarker[]; nextPageToken?: string };

function toMarker(m: TradeMarker): Marker {
  return {
    time: Math.floor(Date.parse(m.time) / 1000),
    position: m.side === "SIDE_SELL" ? "aboveBar" : "belowBar",
    color: m.side === "SIDE_SELL" ? "#ef5350" : "#26a69a",
    shape: m.side === "SIDE_SELL" ? "arrowDown" : "arrowUp",
    text: `${fmtEnum(m.side, "SIDE_")} ${fmtNum(m.price, 2)}`,
  };
}

function Playback({ backtestId }: { backtestId: string }) {
  const [bt, setBt] = useState<Backtest>();
  const [candles, setCandles] = useState<Candle[]>();
  const [indicators, setIndicators] = useState<IndicatorSeries[]>([]);
  const [markers, setMarkers] = useState<Marker[]>([]);
  const [nextToken, setNextToken] = useState<string>();
  const [pageError, setPageError] = useState<string>();
  const loadingPage = useRef(false);
  const [equity, setEquity] = useState<EquityPoint[]>();
  const [error, setError] = useState<string>();
  const [index, setIndex] = useState(0);
  const [scrubbed, setScrubbed] = useState(false); // the chart follows the scrubber once used
  const [state, setState] = useState<PlaybackState>();
  const [stateError, setStateError] = useState<string>();
  const base = `/api/backtests/${encodeURIComponent(backtestId)}`;

  useEffect(() => {
    Promise.all([
      api.get<{ backtest?: Backtest }>(base),
      api.get<PlaybackPage>(`${base}/playback/candles`, { page_size: PLAYBACK_PAGE }),
      api.get<{ points?: EquityPoint[] }>(`${base}/equity`, { max_points: EQUITY_POINTS }),
    ])
      .then(([b, pc, eq]) => {
        setBt(b.backtest ?? { backtestId });
        const list = pc.candles ?? [];
        setCandles(list);
        setIndicators(pc.indicators ?? []);
        setMarkers((pc.markers ?? []).map(toMarker));
        setNextToken(pc.nextPageToken || undefined);
        setEquity(eq.points ?? []);
        setIndex(Math.max(0, list.length - 1));
      })
      .catch((err) => setError(errorText(err)));
  }, [backtestId, base]);

  // The next page of candles (when the chart is scrolled, or the scrubber pushed, to the end).
  const loadMore = useCallback(() => {
    if (!nextToken || loadingPage.current || !candles) return;
    loadingPage.current = true;
    const loaded = candles.length;
    api
      .get<PlaybackPage>(`${base}/playback/candles`, { page_size: PLAYBACK_PAGE, page_token: nextToken })
      .then((pc) => {
        setCandles((cur) => [...(cur ?? []), ...(pc.candles ?? [])]);
        setIndicators((cur) => mergeIndicators(cur, pc.indicators ?? [], loaded));
        setMarkers((cur) => [...cur, ...(pc.markers ?? []).map(toMarker)]);
        setNextToken(pc.nextPageToken || undefined);
        setPageError(undefined);
      })
      .catch((err) => setPageError(errorText(err)))
      .finally(() => (loadingPage.current = false));
  }, [base, nextToken, candles]);

  // The state at the scrubbed bar (debounced: dragging asks once it settles).
  const at = candles?.[index]?.start;
  useEffect(() => {
    if (!at) return;
    let cancelled = false;
    const timer = window.setTimeout(() => {
      api
        .get<{ state?: PlaybackState }>(`/api/backtests/${encodeURIComponent(backtestId)}/playback/state`, { timestamp: at, recent_fills_limit: 10 })
        .then((r) => {
          if (cancelled) return;
          setState(r.state);
          setStateError(undefined);
        })
        .catch((err) => !cancelled && setStateError(errorText(err)));
    }, 150);
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [backtestId, at]);

  if (error) return <ErrorBox error={error} />;
  if (!bt || !candles || !equity) return <Loading what="playback" />;
  const stats = bt.statistics ?? {};
  return (
    <div className="playback" data-testid="playback">
      <h2>
        Playback: {bt.config?.strategy} on {bt.config?.productId} ({fmtDateTime(bt.config?.timeRange?.start)} → {fmtDateTime(bt.config?.timeRange?.end)})
      </h2>
      {candles.length === 0 ? (
        <Empty>This run has no candles.</Empty>
      ) : (
        <>
          <CandleChart candles={candles} indicators={indicators} markers={withCursor(markers, at)} height={360} onNearEnd={loadMore} cursor={scrubbed ? index : undefined} />
          <div className="scrubber">
            <input
              type="range"
              aria-label="Playback time"
              data-testid="scrubber"
              min={0}
              max={candles.length - 1}
              value={index}
              onChange={(e) => {
                const i = Number(e.target.value);
                setIndex(i);
                setScrubbed(true);
                if (i >= candles.length - 1) loadMore();
              }}
              onKeyDown={(e) => {
                if ((e.key === "End" || e.key === "ArrowRight") && index >= candles.length - 1) loadMore();
              }}
            />
            <span data-testid="scrub-time">{fmtDateTime(at)}</span>
          </div>
          <div className="pager">
            <span data-testid="bars-loaded">
              {candles.length.toLocaleString()} bars loaded{nextToken ? ", more on scroll" : " (the whole run)"}
            </span>
            {nextToken && (
              <button type="button" onClick={loadMore} data-testid="load-more-bars">
                Load {PLAYBACK_PAGE} more bars
              </button>
            )}
            {pageError && <ErrorBox error={pageError} retry={loadMore} />}
          </div>
        </>
      )}
      <div className="split">
        <div>
          <h2>State at {fmtTime(state?.time)}</h2>
          {stateError && <ErrorBox error={stateError} />}
          {state ? (
            <dl data-testid="playback-state">
              <dt>Bar</dt>
              <dd data-testid="state-bar">{state.barIndex ?? 0}</dd>
              <dt>Cash</dt>
              <dd data-testid="state-cash">{fmtMoney(state.cash)}</dd>
              <dt>Equity</dt>
              <dd data-testid="state-equity">{fmtMoney(state.equity)}</dd>
              <dt>Realized P&amp;L</dt>
              <dd>{fmtMoney(state.realizedPnl)}</dd>
              <dt>Drawdown</dt>
              <dd>{fmtPct(state.drawdown)}</dd>
              <dt>Positions</dt>
              <dd data-testid="state-positions">
                {state.positions?.length ? state.positions.map((p) => `${fmtNum(p.quantity)} ${p.productId} @ ${fmtNum(p.averageEntryPrice, 2)}`).join(", ") : "flat"}
              </dd>
              <dt>Open orders</dt>
              <dd>{state.openOrders?.length ? state.openOrders.map((o) => `${fmtEnum(o.side, "SIDE_")} ${fmtNum(o.size)}`).join(", ") : "none"}</dd>
            </dl>
          ) : (
            !stateError && <Loading what="state" />
          )}
          <h2>Statistics</h2>
          <dl data-testid="statistics">
            {Object.entries(stats).map(([k, v]) => (
              <FragmentStat key={k} name={k} value={v} />
            ))}
          </dl>
        </div>
        <div>
          <h2>Equity and drawdown</h2>
          {equity.length ? <EquityChart points={equity} /> : <Empty>No equity points.</Empty>}
        </div>
      </div>
      <Trades base={base} />
    </div>
  );
}

interface Trade {
  tradeId: string;
  productId?: string;
  side?: string;
  size?: string;
  entryTime?: string;
  entryPrice?: string;
  exitTime?: string;
  exitPrice?: string;
  pnl?: string;
  returnFraction?: number;
  open?: boolean;
}

/** The run's round-trip trades, one page of TRADES_PAGE at a time (page tokens, both ways). */
function Trades({ base }: { base: string }) {
  const [tokens, setTokens] = useState<string[]>([""]); // token of each page seen so far
  const [page, setPage] = useState(0);
  const [rows, setRows] = useState<Trade[]>();
  const [next, setNext] = useState<string>();
  const [error, setError] = useState<string>();
  const load = useCallback(() => {
    setRows(undefined);
    api
      .get<{ trades?: Trade[]; nextPageToken?: string }>(`${base}/trades`, { page_size: TRADES_PAGE, page_token: tokens[page] || undefined })
      .then((r) => {
        setRows(r.trades ?? []);
        setNext(r.nextPageToken || undefined);
        setError(undefined);
      })
      .catch((err) => setError(errorText(err)));
  }, [base, tokens, page]);
  useEffect(load, [load]);
  const forward = () => {
    if (!next) return;
    setTokens((t) => [...t.slice(0, page + 1), next]);
    setPage(page + 1);
  };
  return (
    <>
      <h2>Trades</h2>
      <div className="pager">
        <button type="button" disabled={page === 0} onClick={() => setPage(page - 1)}>
          ← Previous
        </button>
        <span data-testid="trades-page">
          page {page + 1} ({TRADES_PAGE} per page)
        </span>
        <button type="button" disabled={!next} onClick={forward}>
          Next →
        </button>
      </div>
      <Table
        testId="backtest-trades"
        what="trades"
        rows={rows}
        rowKey={(t) => t.tradeId}
        empty="This run made no trades."
        error={error}
        retry={load}
        columns={[
          { title: "Entry", render: (t) => fmtDateTime(t.entryTime) },
          { title: "Side", render: (t) => fmtEnum(t.side, "SIDE_") },
          { title: "Size", render: (t) => fmtNum(t.size), numeric: true },
          { title: "Entry price", render: (t) => fmtNum(t.entryPrice, 2), numeric: true },
          { title: "Exit", render: (t) => (t.open ? "open" : fmtDateTime(t.exitTime)) },
          { title: "Exit price", render: (t) => fmtNum(t.exitPrice, 2), numeric: true },
          { title: "P&L", render: (t) => fmtNum(t.pnl, 2), numeric: true },
          { title: "Return", render: (t) => fmtPct(t.returnFraction), numeric: true },
        ]}
      />
    </>
  );
}

/** The trade markers plus one showing where the scrubber is. */
function withCursor(markers: Marker[], at: string | undefined): Marker[] {
  if (!at) return markers;
  return [...markers, { time: Math.floor(Date.parse(at) / 1000), position: "aboveBar", color: "#f5f5f5", shape: "arrowDown", text: "▼ now" }];
}

interface Sweep {
  sweepId: string;
  config?: { base?: Backtest["config"]; rankBy?: string; grid?: { axes?: { name: string; values?: string[] }[] } };
  status?: string;
  total?: number;
  done?: number;
  createTime?: string;
}
interface SweepResult {
  backtestId: string;
  params?: Record<string, string>;
  statistics?: Record<string, number | string>;
  rank?: number;
  status?: string;
}

const SWEEP_PAGE = 10;
const SWEEP_RESULTS_PAGE = 50;

const RANK_BY = ["STATISTIC_SHARPE", "STATISTIC_TOTAL_RETURN", "STATISTIC_SORTINO", "STATISTIC_CALMAR", "STATISTIC_MAX_DRAWDOWN", "STATISTIC_WIN_RATE", "STATISTIC_PROFIT_FACTOR"];
const FINISHED = ["RUN_STATUS_COMPLETED", "RUN_STATUS_FAILED", "RUN_STATUS_CANCELED", "RUN_STATUS_CANCELLED"];

/** Parameter sweeps (latest 10), a launch form with live progress, and the ranked results of
 * the one picked. */
function Sweeps({ onPlay }: { onPlay: (backtestId: string) => void }) {
  const [sweeps, setSweeps] = useState<Sweep[]>();
  const [error, setError] = useState<string>();
  const [picked, setPicked] = useState<string>();
  const [results, setResults] = useState<SweepResult[]>();
  const [resultsError, setResultsError] = useState<string>();
  const [resultsVersion, setResultsVersion] = useState(0);
  const load = useCallback(() => {
    api
      .get<{ sweeps?: Sweep[] }>("/api/sweeps", { page_size: SWEEP_PAGE })
      .then((r) => {
        setSweeps(r.sweeps ?? []);
        setError(undefined);
      })
      .catch((err) => setError(errorText(err)));
  }, []);
  useEffect(load, [load]);
  useEffect(() => {
    if (!picked) return;
    setResults(undefined);
    setResultsError(undefined);
    api
      .get<{ results?: SweepResult[] }>(`/api/sweeps/${encodeURIComponent(picked)}/results`, { page_size: SWEEP_RESULTS_PAGE })
      .then((r) => setResults(r.results ?? []))
      .catch((err) => setResultsError(errorText(err)));
  }, [picked, resultsVersion]);
  const pickedSweep = sweeps?.find((w) => w.sweepId === picked);
  return (
    <>
      <h2>Sweeps</h2>
      <SweepForm
        onLaunched={load}
        onProgress={load}
        onDone={(id) => {
          load();
          setPicked(id);
          setResultsVersion((v) => v + 1);
        }}
      />
      <Table
        testId="sweeps"
        what="sweeps"
        rows={sweeps}
        rowKey={(w) => w.sweepId}
        empty="No parameter sweeps yet: launch one above."
        error={error}
        retry={load}
        columns={[
          { title: "Created", render: (w) => fmtTime(w.createTime) },
          { title: "Strategy", render: (w) => w.config?.base?.strategy },
          { title: "Product", render: (w) => w.config?.base?.productId },
          { title: "Grid", render: (w) => (w.config?.grid?.axes ?? []).map((a) => `${a.name}: ${(a.values ?? []).join(", ")}`).join("; ") || "search" },
          { title: "Ranked by", render: (w) => fmtEnum(w.config?.rankBy, "STATISTIC_") },
          { title: "Status", render: (w) => `${fmtEnum(w.status, "RUN_STATUS_")} ${w.done ?? 0}/${w.total ?? 0}` },
          {
            title: "",
            render: (w) => (
              <button type="button" onClick={() => setPicked(w.sweepId)}>
                {picked === w.sweepId ? "Shown" : "Results"}
              </button>
            ),
          },
        ]}
      />
      {picked && (
        <>
          <h2>
            Sweep results, best first by {fmtEnum(pickedSweep?.config?.rankBy || "STATISTIC_SHARPE", "STATISTIC_")} (top {SWEEP_RESULTS_PAGE})
          </h2>
          <Table
            testId="sweep-results"
            what="results"
            rows={results}
            rowKey={(r) => r.backtestId}
            empty="No results yet."
            error={resultsError}
            columns={[
              { title: "Rank", render: (r) => r.rank ?? "—", numeric: true },
              { title: "Parameters", render: (r) => Object.entries(r.params ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") },
              { title: "Return", render: (r) => fmtPct(r.statistics?.totalReturn), numeric: true },
              { title: "Sharpe", render: (r) => statText("sharpe", r.statistics?.sharpe), numeric: true },
              { title: "Max DD", render: (r) => fmtPct(r.statistics?.maxDrawdown), numeric: true },
              { title: "Trades", render: (r) => String(r.statistics?.tradeCount ?? "—"), numeric: true },
              { title: "Status", render: (r) => fmtEnum(r.status, "RUN_STATUS_") },
              {
                title: "",
                render: (r) => (
                  <button type="button" onClick={() => onPlay(r.backtestId)}>
                    Play back
                  </button>
                ),
              },
            ]}
          />
        </>
      )}
    </>
  );
}

/** Launch a sweep: strategy, a grid (comma-separated values per parameter), product, range,
 * ranking statistic; its progress (backtests done / total) arrives over `/ws/live`. */
function SweepForm({ onLaunched, onProgress, onDone }: { onLaunched: () => void; onProgress: () => void; onDone: (id: string) => void }) {
  const [strategies, setStrategies] = useState<StrategyDef[]>();
  const [products, setProducts] = useState<Product[]>([]);
  const [strategy, setStrategy] = useState("");
  const [productId, setProductId] = useState("");
  const [hours, setHours] = useState(6);
  const [rankBy, setRankBy] = useState(RANK_BY[0]);
  const [grid, setGrid] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();
  const [running, setRunning] = useState<{ id: string; done: number; total: number; status: string }>();

  useEffect(() => {
    Promise.all([
      api.get<{ strategies?: StrategyDef[] }>("/api/backtests/strategies"),
      api.get<{ products?: Product[] }>("/api/market/products", { page_size: 100 }),
    ])
      .then(([st, p]) => {
        setStrategies(st.strategies ?? []);
        setProducts(p.products ?? []);
        setStrategy((cur) => cur || st.strategies?.[0]?.name || "");
        setProductId((cur) => cur || p.products?.[0]?.productId || "");
      })
      .catch((err) => setError(errorText(err)));
  }, []);
  const def = strategies?.find((x) => x.name === strategy);
  useEffect(() => {
    setGrid(Object.fromEntries((def?.parameters ?? []).map((p) => [p.name, p.defaultValue ?? ""])));
  }, [def]);

  useEffect(() => {
    if (!running?.id) return;
    const id = running.id;
    const onFrame = (frame: Record<string, unknown>) => {
      const p = frame.progress as { backtestId?: string; status?: string; done?: string; total?: string } | undefined;
      if (!p || p.backtestId) return; // the sweep's own updates, not its backtests'
      setRunning({ id, done: Number(p.done ?? 0), total: Number(p.total ?? 0), status: p.status ?? "" });
      onProgress();
      if (p.status && FINISHED.includes(p.status)) onDone(id);
    };
    const socket = new GatewaySocket("/ws/live", { onSnapshot: onFrame, onData: onFrame }, true);
    socket.subscribe({ subscriptionId: `sweep-${id}`, channel: "CHANNEL_BACKTEST_PROGRESS", targetId: id });
    socket.start();
    return () => socket.stop();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [running?.id]);

  const axes = Object.entries(grid).map(([name, text]) => ({ name, values: text.split(",").map((v) => v.trim()).filter(Boolean) }));
  const combos = axes.reduce((n, a) => n * Math.max(1, a.values.length), 1);
  const launch = async () => {
    setError(undefined);
    const end = new Date(Date.now() - 60_000);
    const start = new Date(end.getTime() - hours * 3600_000);
    try {
      const r = await api.post<{ sweepId: string }>("/api/sweeps", {
        config: {
          base: {
            strategy,
            productId,
            interval: "CANDLE_INTERVAL_ONE_MINUTE",
            initialCash: "10000",
            timeRange: { start: start.toISOString(), end: end.toISOString() },
          },
          grid: { axes: axes.filter((a) => a.values.length) },
          rankBy,
        },
      });
      setRunning({ id: r.sweepId, done: 0, total: combos, status: "RUN_STATUS_QUEUED" });
      onLaunched();
    } catch (err) {
      setError(errorText(err));
    }
  };

  if (!strategies) return error ? <ErrorBox error={error} /> : <Loading what="strategies" />;
  return (
    <div className="form" data-testid="sweep-form">
      <label>
        Sweep strategy
        <select value={strategy} onChange={(e) => setStrategy(e.target.value)}>
          {strategies.map((x) => (
            <option key={x.name} value={x.name}>
              {x.displayName ?? x.name}
            </option>
          ))}
        </select>
      </label>
      {(def?.parameters ?? []).map((p) => (
        <label key={p.name} title={`${p.description ?? p.name}: comma-separated values`}>
          {`${p.name} values`}
          <input size={10} value={grid[p.name] ?? ""} onChange={(e) => setGrid({ ...grid, [p.name]: e.target.value })} />
        </label>
      ))}
      <label>
        Sweep product
        <select value={productId} onChange={(e) => setProductId(e.target.value)}>
          {products.map((p) => (
            <option key={p.productId}>{p.productId}</option>
          ))}
        </select>
      </label>
      <label>
        Sweep last hours
        <input type="number" min={1} max={24 * 30} value={hours} onChange={(e) => setHours(Number(e.target.value))} />
      </label>
      <label>
        Rank by
        <select value={rankBy} onChange={(e) => setRankBy(e.target.value)}>
          {RANK_BY.map((r) => (
            <option key={r} value={r}>
              {fmtEnum(r, "STATISTIC_")}
            </option>
          ))}
        </select>
      </label>
      <button type="button" className="primary" onClick={launch}>
        Run sweep ({combos} backtests)
      </button>
      {running && (
        <span data-testid="sweep-progress">
          <progress max={Math.max(1, running.total)} value={running.done} /> {running.done}/{running.total} {fmtEnum(running.status, "RUN_STATUS_")}
        </span>
      )}
      {error && <ErrorBox error={error} />}
    </div>
  );
}

interface CompareResult {
  backtestA?: Backtest;
  backtestB?: Backtest;
  equity?: { time: string; equityA?: string; equityB?: string }[];
  onlyInA?: unknown[];
  onlyInB?: unknown[];
}

const COMPARED_STATS = ["totalReturn", "sharpe", "sortino", "maxDrawdown", "winRate", "profitFactor", "tradeCount", "finalEquity"];

/** A/B comparison of two runs: equity curves on one chart, statistics side by side. */
function Compare({ a, b }: { a: string; b: string }) {
  const [result, setResult] = useState<CompareResult>();
  const [error, setError] = useState<string>();
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    api
      .get<CompareResult>("/api/backtests/compare", { backtest_a_id: a, backtest_b_id: b, max_points: EQUITY_POINTS })
      .then(setResult)
      .catch((err) => setError(errorText(err)));
  }, [a, b]);
  useEffect(() => {
    if (!box.current || !result?.equity?.length) return;
    const chart = createChart(box.current, chartOptions());
    const time = (iso: string) => Math.floor(Date.parse(iso) / 1000) as UTCTimestamp;
    const points = result.equity;
    const series = (key: "equityA" | "equityB", color: string, title: string) =>
      chart
        .addSeries(LineSeries, { color, lineWidth: 2, title })
        .setData(points.filter((p) => p[key] !== undefined).map((p) => ({ time: time(p.time), value: Number(p[key]) })));
    series("equityA", "#58a6ff", "A");
    series("equityB", "#f5a623", "B");
    chart.timeScale().fitContent();
    return () => chart.remove();
  }, [result]);

  if (error) return <ErrorBox error={error} />;
  if (!result) return <Loading what="comparison" />;
  const label = (x?: Backtest) => `${x?.config?.strategy ?? "?"} · ${x?.config?.productId ?? "?"} · ${fmtTime(x?.createTime)}`;
  return (
    <div className="compare" data-testid="compare">
      <h2>A/B comparison</h2>
      <div className="split">
        <table data-testid="compare-stats" className="wrap">
          <thead>
            <tr>
              <th />
              <th>A: {label(result.backtestA)}</th>
              <th>B: {label(result.backtestB)}</th>
            </tr>
          </thead>
          <tbody>
            {COMPARED_STATS.map((k) => (
              <tr key={k}>
                <td>{k.replace(/([A-Z])/g, " $1").toLowerCase()}</td>
                <td className="num">{statText(k, result.backtestA?.statistics?.[k])}</td>
                <td className="num">{statText(k, result.backtestB?.statistics?.[k])}</td>
              </tr>
            ))}
            <tr>
              <td>trades only in this run</td>
              <td className="num">{result.onlyInA?.length ?? 0}</td>
              <td className="num">{result.onlyInB?.length ?? 0}</td>
            </tr>
          </tbody>
        </table>
        <div className="chart" ref={box} style={{ height: 300 }} data-testid="compare-chart" />
      </div>
    </div>
  );
}

function statText(name: string, value: number | string | undefined): string {
  if (value === undefined) return "—";
  return PCT_STATS.has(name) ? fmtPct(value) : typeof value === "number" ? fmtNum(value, 3) : fmtNum(value, 2);
}

const PCT_STATS = new Set(["totalReturn", "annualizedReturn", "maxDrawdown", "winRate", "exposure"]);

function FragmentStat({ name, value }: { name: string; value: number | string }) {
  const label = name.replace(/([A-Z])/g, " $1").toLowerCase();
  const shown = statText(name, value);
  return (
    <>
      <dt>{label}</dt>
      <dd>{shown}</dd>
    </>
  );
}

function EquityChart({ points }: { points: EquityPoint[] }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const chart = createChart(box.current, chartOptions());
    const time = (p: EquityPoint) => Math.floor(Date.parse(p.time) / 1000) as UTCTimestamp;
    chart.addSeries(LineSeries, { color: "#58a6ff", lineWidth: 2, title: "equity" }).setData(points.map((p) => ({ time: time(p), value: Number(p.equity ?? 0) })));
    chart
      .addSeries(AreaSeries, { lineColor: "#ef5350", topColor: "rgba(239,83,80,0.05)", bottomColor: "rgba(239,83,80,0.4)", title: "drawdown %", invertFilledArea: true }, 1)
      .setData(points.map((p) => ({ time: time(p), value: -100 * (p.drawdown ?? 0) })));
    chart.timeScale().fitContent();
    return () => chart.remove();
  }, [points]);
  return <div className="chart" data-testid="equity-chart" ref={box} style={{ height: 320 }} />;
}
