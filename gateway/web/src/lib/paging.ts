// Paged playback: pages of candles arrive one after another; their indicator series are
// appended to what is loaded so the chart keeps one series per indicator output.
import type { IndicatorSeries } from "./types";

export const seriesKey = (s: IndicatorSeries): string =>
  `${s.spec?.name}|${JSON.stringify(s.spec?.params ?? {})}|${s.output ?? ""}`;

/** `have` (aligned with the `loadedBars` candles shown) plus one page's series. A series first
 * seen in a later page is padded with NaN (a gap) so it stays aligned with the candles. */
export function mergeIndicators(have: IndicatorSeries[], page: IndicatorSeries[], loadedBars: number): IndicatorSeries[] {
  const byKey = new Map(have.map((s) => [seriesKey(s), s]));
  for (const s of page) {
    const cur = byKey.get(seriesKey(s));
    const pad = cur ? [] : Array<string>(loadedBars).fill("NaN");
    byKey.set(seriesKey(s), { ...s, values: [...(cur?.values ?? pad), ...(s.values ?? [])] });
  }
  return [...byKey.values()];
}
