// TradingView lightweight-charts wrapper: candles plus indicator lines (overlays on the price
// pane, oscillators such as RSI and MACD in a pane below). Times shown in the user's time zone.
import { useEffect, useRef } from "react";
import {
  CandlestickSeries,
  HistogramSeries,
  LineSeries,
  createChart,
  createSeriesMarkers,
  type ISeriesMarkersPluginApi,
  type IChartApi,
  type ISeriesApi,
  type SeriesType,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import type { Candle, IndicatorSeries } from "../lib/types";

export interface Marker {
  time: number; // unix seconds
  position: "aboveBar" | "belowBar";
  color: string;
  shape: "arrowUp" | "arrowDown";
  text: string;
}

const COLORS = ["#f5a623", "#4a90e2", "#bd10e0", "#50e3c2", "#b8e986", "#e94e77"];
const OSCILLATORS = new Set(["rsi", "macd", "atr"]);

export function candleTime(c: Candle): UTCTimestamp {
  return Math.floor(Date.parse(c.start) / 1000) as UTCTimestamp;
}

export function toBar(c: Candle) {
  return { time: candleTime(c), open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
}

const localTime = (t: Time) => new Date((t as number) * 1000);

/** Options shared by every chart: dark theme, axis and crosshair times in the browser's zone
 * (lightweight-charts itself formats times as UTC). */
export function chartOptions() {
  return {
    autoSize: true,
    layout: { background: { color: "#11161d" }, textColor: "#c9d1d9" },
    grid: { vertLines: { color: "#1d242c" }, horzLines: { color: "#1d242c" } },
    localization: { timeFormatter: (t: Time) => localTime(t).toLocaleString() },
    timeScale: {
      timeVisible: true,
      secondsVisible: false,
      tickMarkFormatter: (t: Time) => {
        const d = localTime(t);
        // Midnight ticks show the date, others the time of day.
        return d.getHours() === 0 && d.getMinutes() === 0
          ? d.toLocaleDateString([], { month: "short", day: "numeric" })
          : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      },
    },
  };
}

/** Imperative handle: the Market view pushes live candle updates straight into the series. */
export interface ChartHandle {
  update(c: Candle): void;
}

export function CandleChart({
  candles,
  indicators,
  markers,
  onReady,
  onNearEnd,
  cursor,
  height = 420,
}: {
  candles: Candle[];
  indicators: IndicatorSeries[];
  markers?: Marker[];
  onReady?: (handle: ChartHandle | null) => void;
  /** Paged data: called when the visible range nears the last loaded bar (load the next page). */
  onNearEnd?: () => void;
  /** Bar index to keep in view (the playback scrubber's position). */
  cursor?: number;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const candleSeries = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const lines = useRef<ISeriesApi<SeriesType>[]>([]);
  const lastTime = useRef<number>(0);
  const markerPlugin = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const nearEnd = useRef(onNearEnd);
  nearEnd.current = onNearEnd;
  const barCount = useRef(0);
  const quietUntil = useRef(0); // range changes we cause ourselves (new data) do not page

  useEffect(() => {
    if (!box.current) return;
    const c = createChart(box.current, chartOptions());
    chart.current = c;
    candleSeries.current = c.addSeries(CandlestickSeries, {
      upColor: "#26a69a",
      downColor: "#ef5350",
      borderVisible: false,
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
    });
    markerPlugin.current = createSeriesMarkers(candleSeries.current, []);
    c.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (performance.now() < quietUntil.current) return;
      if (range && barCount.current > 0 && range.to >= barCount.current - 20) nearEnd.current?.();
    });
    onReady?.({
      update(candle: Candle) {
        const bar = toBar(candle);
        // lightweight-charts only accepts the last bar or a newer one.
        if (!candleSeries.current || bar.time < lastTime.current) return;
        candleSeries.current.update(bar);
        lastTime.current = bar.time;
      },
    });
    return () => {
      onReady?.(null);
      c.remove();
      chart.current = null;
      candleSeries.current = null;
      lines.current = [];
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const bars = candles.map(toBar);
    const scale = chart.current?.timeScale();
    // Paged: a page appended keeps the view where the user is; the first shows the start.
    const range = onNearEnd && barCount.current > 0 ? scale?.getVisibleLogicalRange() : null;
    quietUntil.current = performance.now() + 250;
    candleSeries.current?.setData(bars);
    if (onNearEnd && scale && bars.length)
      scale.setVisibleLogicalRange(range ?? { from: 0, to: Math.min(bars.length, 200) });
    barCount.current = bars.length;
    lastTime.current = bars.length ? (bars[bars.length - 1].time as number) : 0;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [candles]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    for (const s of lines.current) c.removeSeries(s);
    lines.current = [];
    indicators.forEach((ind, i) => {
      const name = ind.spec?.name ?? "";
      const pane = OSCILLATORS.has(name) ? 1 : 0;
      const color = COLORS[i % COLORS.length];
      const title = `${name}${ind.output && ind.output !== "value" ? ` ${ind.output}` : ""}`;
      const series =
        ind.output === "histogram"
          ? c.addSeries(HistogramSeries, { color, title, priceLineVisible: false }, pane)
          : c.addSeries(LineSeries, { color, lineWidth: 1, title, priceLineVisible: false, lastValueVisible: false }, pane);
      const data = (ind.values ?? []).flatMap((v, j) => {
        const n = Number(v);
        // Warm-up values are NaN ("NaN" in JSON): leave a gap.
        return j < candles.length && Number.isFinite(n) ? [{ time: candleTime(candles[j]), value: n }] : [];
      });
      series.setData(data);
      lines.current.push(series);
    });
  }, [indicators, candles]);

  useEffect(() => {
    const scale = chart.current?.timeScale();
    const range = scale?.getVisibleLogicalRange();
    if (cursor === undefined || !scale || !range || (cursor >= range.from && cursor <= range.to)) return;
    // Shift the view just enough to bring the cursor in, with a small margin.
    const width = range.to - range.from;
    const margin = Math.min(10, width / 10);
    const from = cursor < range.from ? Math.max(0, cursor - margin) : cursor + margin - width;
    scale.setVisibleLogicalRange({ from, to: from + width });
  }, [cursor]);

  useEffect(() => {
    const sorted = [...(markers ?? [])].sort((a, b) => a.time - b.time);
    markerPlugin.current?.setMarkers(sorted.map((m) => ({ ...m, time: m.time as UTCTimestamp })));
  }, [markers, candles]);

  return <div className="chart" data-testid="chart" ref={box} style={{ height }} />;
}
