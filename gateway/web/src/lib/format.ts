// Display helpers. Times are shown in the browser's time zone (Intl picks it up).

const timeFmt = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function fmtTime(iso?: string): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  // Today: time only; otherwise date and time.
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

export function fmtDateTime(iso?: string): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTimeFmt.format(d);
}

/** Decimal strings (prices, sizes) as sent by the services, trimmed for display. */
export function fmtNum(value?: string | number, maxFrac = 8): string {
  if (value === undefined || value === "") return "—";
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString(undefined, { maximumFractionDigits: maxFrac });
}

export function fmtMoney(value?: string | number, currency = "USD"): string {
  if (value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString(undefined, { style: "currency", currency, maximumFractionDigits: 2 });
}

/** `ORDER_STATUS_PARTIALLY_FILLED` → `partially filled`. */
export function fmtEnum(value?: string, prefix?: string): string {
  if (!value) return "—";
  let v = value;
  if (prefix && v.startsWith(prefix)) v = v.slice(prefix.length);
  return v.toLowerCase().replace(/_/g, " ");
}

export function fmtPct(value?: number | string): string {
  if (value === undefined || value === "") return "—";
  const n = Number(value);
  return Number.isFinite(n) ? `${(n * 100).toFixed(2)}%` : String(value);
}
