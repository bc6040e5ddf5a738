// JSON API client for the gateway's `/api/*` routes (protobuf JSON mapping on the wire).

/** An error answer of the gateway (`trading.gateway.v1.HttpError`) or a network failure. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "tradeplane.token";
const AUTH_EVENT = "tradeplane:auth";

/** Bearer token for gateways with AUTH_MODE=jwt (none with `make up`). Kept in
 * sessionStorage: it lives as long as the tab and is not shared with other tabs. */
export function authToken(): string | null {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setAuthToken(token: string | null): void {
  try {
    if (token) window.sessionStorage.setItem(TOKEN_KEY, token.trim().replace(/^Bearer\s+/i, ""));
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token only lasts until the next reload */
  }
  window.dispatchEvent(new CustomEvent(AUTH_EVENT, { detail: { signedIn: Boolean(token) } }));
}

const AUTH_REQUIRED_KEY = "tradeplane.authRequired";

/** Whether this gateway has refused a caller without a valid token (auth is on). */
export function authRequired(): boolean {
  try {
    return window.sessionStorage.getItem(AUTH_REQUIRED_KEY) === "1";
  } catch {
    return false;
  }
}

const REFUSED_KEY = "tradeplane.refusedToken";

/** Whether the gateway refused the token we hold (bad signature, expired...). */
export function tokenRefused(): boolean {
  try {
    const token = authToken();
    return token !== null && window.sessionStorage.getItem(REFUSED_KEY) === token;
  } catch {
    return false;
  }
}

/** Tell the shell the gateway refused our credentials (HTTP 401 or WebSocket 4401). */
export function reportUnauthenticated(message: string): void {
  try {
    window.sessionStorage.setItem(AUTH_REQUIRED_KEY, "1");
    const token = authToken();
    if (token) window.sessionStorage.setItem(REFUSED_KEY, token);
  } catch {
    /* storage disabled */
  }
  window.dispatchEvent(new CustomEvent(AUTH_EVENT, { detail: { unauthenticated: message } }));
}

export type AuthEvent = { signedIn?: boolean; unauthenticated?: string };

export function onAuthEvent(fn: (e: AuthEvent) => void): () => void {
  const handler = (ev: Event) => fn((ev as CustomEvent<AuthEvent>).detail);
  window.addEventListener(AUTH_EVENT, handler);
  return () => window.removeEventListener(AUTH_EVENT, handler);
}

type Query = Record<string, string | number | undefined>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function request<T>(method: string, path: string, query?: Query, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = authToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // A request that hangs must not freeze a view (or the polling fallback): give up after 10 s.
  const controller = new AbortController();
  const timer = window.setTimeout(() => controller.abort(), 10_000);
  let res: Response;
  try {
    res = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (err) {
    throw new ApiError(`the gateway is unreachable (${(err as Error).message})`, 0, "UNAVAILABLE");
  } finally {
    window.clearTimeout(timer);
  }
  const text = await res.text();
  let doc: unknown = {};
  try {
    doc = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(`unexpected answer from ${path} (HTTP ${res.status})`, res.status, "UNKNOWN");
  }
  if (!res.ok) {
    const e = doc as { code?: string; message?: string };
    if (res.status === 401) reportUnauthenticated(e.message ?? "sign-in required");
    throw new ApiError(e.message ?? `HTTP ${res.status}`, res.status, e.code ?? "UNKNOWN");
  }
  return doc as T;
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>("GET", path, query),
  post: <T>(path: string, body: unknown = {}) => request<T>("POST", path, undefined, body),
};

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
