// Market monitor: candle chart per product and interval with selectable indicators, live
// candles and ticks from `/ws/market`, last price, spread and recent trades.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorText } from "../lib/api";
import { fmtEnum, fmtNum, fmtTime } from "../lib/format";
import { GatewaySocket, type SocketState } from "../lib/socket";
import type { Candle, IndicatorSeries, Product, Tick } from "../lib/types";
import { CandleChart, type ChartHandle } from "./CandleChart";
import { Empty, ErrorBox, Loading, Table } from "./common";

const INTERVALS: { value: string; label: string; seconds: number }[] = [
  { value: "CANDLE_INTERVAL_ONE_MINUTE", label: "1m", seconds: 60 },
  { value: "CANDLE_INTERVAL_FIVE_MINUTES", label: "5m", seconds: 300 },
  { value: "CANDLE_INTERVAL_FIFTEEN_MINUTES", label: "15m", seconds: 900 },
  { value: "CANDLE_INTERVAL_ONE_HOUR", label: "1h", seconds: 3600 },
  { value: "CANDLE_INTERVAL_SIX_HOURS", label: "6h", seconds: 21600 },
  { value: "CANDLE_INTERVAL_ONE_DAY", label: "1d", seconds: 86400 },
];

// Indicators the market service computes (GetCandles `indicators`), as the API's query syntax.
const INDICATORS: { id: string; label: string; query: string }[] = [
  { id: "sma", label: "SMA 20", query: "sma:period=20" },
  { id: "ema", label: "EMA 20", query: "ema:period=20" },
  { id: "bollinger", label: "Bollinger 20, 2σ", query: "bollinger:period=20;stddev=2" },
  { id: "vwap", label: "VWAP", query: "vwap" },
  { id: "rsi", label: "RSI 14", query: "rsi:period=14" },
  { id: "macd", label: "MACD 12/26/9", query: "macd:fast=12;slow=26;signal=9" },
];

const BARS = 300; // candles per chart: bounded history
const RECENT_TRADES = 25;
const BOOK_LEVELS = 10; // top N levels per side
const BOOK_POLL_MS = 1_000;

interface PriceLevel {
  price?: string;
  size?: string;
}
interface OrderBook {
  productId?: string;
  seq?: string;
  time?: string;
  bids?: PriceLevel[];
  asks?: PriceLevel[];
}

export function MarketView() {
  const [products, setProducts] = useState<Product[]>();
  const [productsError, setProductsError] = useState<string>();
  const [productId, setProductId] = useState<string>();
  const [interval, setIntervalValue] = useState(INTERVALS[0].value);
  const [selected, setSelected] = useState<string[]>(["sma"]);
  const [candles, setCandles] = useState<Candle[]>();
  const [indicators, setIndicators] = useState<IndicatorSeries[]>([]);
  const [chartError, setChartError] = useState<string>();
  const [ticks, setTicks] = useState<Tick[]>([]);
  const [liveUpdates, setLiveUpdates] = useState(0);
  const [socketState, setSocketState] = useState<SocketState>("connecting");
  const chartHandle = useRef<ChartHandle | null>(null);
  const lastStart = useRef<string>("");
  const [reloadKey, setReloadKey] = useState(0);

  const loadProducts = useCallback(() => {
    api
      .get<{ products?: Product[] }>("/api/market/products", { page_size: 100 })
      .then((r) => {
        const list = r.products ?? [];
        setProductsError(undefined);
        setProducts(list);
        setProductId((cur) => cur ?? list[0]?.productId);
      })
      .catch((err) => setProductsError(errorText(err)));
  }, []);
  useEffect(loadProducts, [loadProducts]);

  // History + indicators from the JSON API (bounded to BARS candles).
  const indicatorQuery = INDICATORS.filter((i) => selected.includes(i.id))
    .map((i) => i.query)
    .join(",");
  useEffect(() => {
    if (!productId) return;
    let cancelled = false;
    const seconds = INTERVALS.find((i) => i.value === interval)?.seconds ?? 60;
    const end = new Date();
    const start = new Date(end.getTime() - BARS * seconds * 1000);
    api
      .get<{ candles?: Candle[]; indicators?: IndicatorSeries[] }>(
        `/api/market/products/${encodeURIComponent(productId)}/candles`,
        {
          interval,
          start: start.toISOString(),
          end: end.toISOString(),
          page_size: BARS,
          indicators: indicatorQuery || undefined,
        },
      )
      .then((r) => {
        if (cancelled) return;
        const list = r.candles ?? [];
        setChartError(undefined);
        setCandles(list);
        setIndicators(r.indicators ?? []);
        lastStart.current = list.length ? list[list.length - 1].start : "";
      })
      .catch((err) => !cancelled && setChartError(errorText(err)));
    return () => {
      cancelled = true;
    };
  }, [productId, interval, indicatorQuery, reloadKey]);

  // Live candles and ticks. A new candle period reloads indicators (computed by the service).
  useEffect(() => {
    if (!productId) return;
    setTicks([]);
    const socket = new GatewaySocket(
      "/ws/market",
      {
        onState: (s) => setSocketState(s),
        onSnapshot: (frame) => onMarket(frame),
        onData: (frame) => onMarket(frame),
      },
      false,
    );
    const onMarket = (frame: Record<string, unknown>) => {
      const candleList = (frame.candles as { candles?: Candle[] } | undefined)?.candles;
      const tickList = (frame.ticks as { ticks?: Tick[] } | undefined)?.ticks;
      if (candleList?.length) {
        let newPeriod = false;
        for (const c of candleList) {
          if (c.productId !== productId) continue;
          chartHandle.current?.update(c);
          if (lastStart.current && c.start > lastStart.current) newPeriod = true;
          if (c.start > lastStart.current) lastStart.current = c.start;
        }
        setLiveUpdates((n) => n + 1);
        if (newPeriod) setReloadKey((k) => k + 1);
      }
      if (tickList?.length) {
        const mine = tickList.filter((t) => t.productId === productId);
        if (mine.length) {
          setTicks((prev) => {
            const seen = new Set(prev.map((t) => t.seq));
            const fresh = mine.filter((t) => !seen.has(t.seq)).reverse();
            return [...fresh, ...prev].slice(0, RECENT_TRADES);
          });
          setLiveUpdates((n) => n + 1);
        }
      }
    };
    socket.subscribe({ subscriptionId: "candles", channel: "CHANNEL_CANDLES", productIds: [productId], interval });
    socket.subscribe({ subscriptionId: "ticks", channel: "CHANNEL_TICKS", productIds: [productId] });
    socket.start();
    return () => socket.stop();
  }, [productId, interval]);

  if (productsError) return <ErrorBox error={productsError} retry={loadProducts} />;
  if (!products) return <Loading what="products" />;
  if (products.length === 0) return <Empty>The market service lists no products.</Empty>;

  const last = ticks[0];
  const bid = Number(last?.bestBid);
  const ask = Number(last?.bestAsk);
  const spread = Number.isFinite(bid) && Number.isFinite(ask) && bid > 0 && ask > 0 ? ask - bid : undefined;
  const lastPrice = last?.price ?? products.find((p) => p.productId === productId)?.lastPrice;

  return (
    <section className="view market">
      <div className="toolbar">
        <label>
          Product{" "}
          <select data-testid="product" value={productId} onChange={(e) => setProductId(e.target.value)}>
            {products.map((p) => (
              <option key={p.productId} value={p.productId}>
                {p.productId}
              </option>
            ))}
          </select>
        </label>
        <span className="segmented" role="group" aria-label="Interval">
          {INTERVALS.map((i) => (
            <button
              key={i.value}
              type="button"
              className={i.value === interval ? "active" : undefined}
              onClick={() => setIntervalValue(i.value)}
            >
              {i.label}
            </button>
          ))}
        </span>
        <span className="spacer" />
        <span className={`badge conn-${socketState === "open" ? "websocket" : socketState === "closed" ? "offline" : "connecting"}`} data-testid="market-connection">
          <span className="dot" /> {socketState === "open" ? "Live" : socketState === "closed" ? "Offline" : "Connecting…"}
        </span>
      </div>
      <div className="quote" data-testid="quote">
        <div>
          <small>Last price</small>
          <strong data-testid="last-price">{fmtNum(lastPrice, 2)}</strong>
        </div>
        <div>
          <small>Bid</small>
          <span data-testid="bid">{fmtNum(last?.bestBid, 2)}</span>
        </div>
        <div>
          <small>Ask</small>
          <span data-testid="ask">{fmtNum(last?.bestAsk, 2)}</span>
        </div>
        <div>
          <small>Spread</small>
          <span data-testid="spread">{spread === undefined ? "—" : fmtNum(spread, 2)}</span>
        </div>
        <div>
          <small>Live updates</small>
          <span data-testid="live-updates">{liveUpdates}</span>
        </div>
      </div>
      <fieldset className="indicators">
        <legend>Indicators</legend>
        {INDICATORS.map((i) => (
          <label key={i.id}>
            <input
              type="checkbox"
              checked={selected.includes(i.id)}
              onChange={(e) =>
                setSelected((cur) => (e.target.checked ? [...cur, i.id] : cur.filter((x) => x !== i.id)))
              }
            />{" "}
            {i.label}
          </label>
        ))}
      </fieldset>
      {chartError && <ErrorBox error={chartError} retry={() => setReloadKey((k) => k + 1)} />}
      {candles === undefined && !chartError && <Loading what="candles" />}
      {candles !== undefined && candles.length === 0 && <Empty>No candles for this product and interval yet.</Empty>}
      <div hidden={!candles?.length}>
        <CandleChart
          key={`${productId}|${interval}`}
          candles={candles ?? []}
          indicators={indicators}
          onReady={(h) => (chartHandle.current = h)}
        />
      </div>
      <div className="bars-count" data-testid="candle-count" hidden>
        {candles?.length ?? 0}
      </div>
      <div className="market-side">
        <div>
          <h2>Recent trades</h2>
          <Table
            testId="trades"
            what="trades"
            rows={ticks}
            rowKey={(t) => `${t.productId}|${t.seq}`}
            empty="Waiting for trades…"
            columns={[
              { title: "Time", render: (t) => fmtTime(t.time) },
              { title: "Side", render: (t) => <span className={t.side === "SIDE_BUY" ? "buy" : "sell"}>{fmtEnum(t.side, "SIDE_")}</span> },
              { title: "Price", render: (t) => fmtNum(t.price, 2), numeric: true },
              { title: "Size", render: (t) => fmtNum(t.size), numeric: true },
            ]}
          />
        </div>
        <div>
          <h2>Order book (top {BOOK_LEVELS})</h2>
          {productId && <OrderBookPanel key={productId} productId={productId} />}
        </div>
      </div>
    </section>
  );
}

/** Top BOOK_LEVELS bids and asks, refreshed every second from `GET /api/market/products/{id}/book`
 * (a bounded snapshot: no delta bookkeeping in the browser). */
function OrderBookPanel({ productId }: { productId: string }) {
  const [book, setBook] = useState<OrderBook>();
  const [error, setError] = useState<string>();
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    const poll = () => {
      api
        .get<{ book?: OrderBook }>(`/api/market/products/${encodeURIComponent(productId)}/book`, { depth: BOOK_LEVELS })
        .then((r) => {
          if (cancelled) return;
          setBook(r.book ?? {});
          setError(undefined);
        })
        .catch((err) => !cancelled && setError(errorText(err)))
        .finally(() => {
          if (!cancelled) timer = window.setTimeout(poll, BOOK_POLL_MS);
        });
    };
    poll();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [productId, attempt]);
  if (error && !book) return <ErrorBox error={error} retry={() => setAttempt((a) => a + 1)} />;
  if (!book) return <Loading what="order book" />;
  const bids = (book.bids ?? []).slice(0, BOOK_LEVELS);
  const asks = (book.asks ?? []).slice(0, BOOK_LEVELS);
  if (!bids.length && !asks.length) return <Empty>The book of {productId} is empty.</Empty>;
  const rows = Array.from({ length: Math.max(bids.length, asks.length) }, (_, i) => ({ i, bid: bids[i], ask: asks[i] }));
  return (
    <>
      {error && <ErrorBox error={`${error} (showing the last book)`} />}
      <table data-testid="order-book">
        <thead>
          <tr>
            <th className="num">Bid size</th>
            <th className="num">Bid</th>
            <th className="num">Ask</th>
            <th className="num">Ask size</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.i} data-key={String(r.i)}>
              <td className="num">{fmtNum(r.bid?.size, 4)}</td>
              <td className="num buy">{fmtNum(r.bid?.price, 2)}</td>
              <td className="num sell">{fmtNum(r.ask?.price, 2)}</td>
              <td className="num">{fmtNum(r.ask?.size, 4)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="note" data-testid="book-time">
        as of {fmtTime(book.time)} · seq {book.seq ?? "—"}
      </p>
    </>
  );
}
