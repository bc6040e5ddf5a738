// Whether the caller may trade. With no token and a gateway that never answered 401
// (AUTH_MODE=disabled, the `make up` default) every caller has every scope. With a JWT, its
// "scope" (space-separated) or "scopes" claim decides, as in the services; the services still
// enforce it, this only hides buttons that would fail.
import { authRequired, authToken, tokenRefused } from "./api.js"; // .js: also loaded by node in the unit tests

const LEVELS: Record<string, number> = { read: 1, trade: 2, admin: 3 };

export interface TokenInfo {
  subject: string;
  scopes: string[];
  expires?: Date;
}

/** The claims of a JWT we display (not verified: the gateway does that). */
export function tokenInfo(token: string | null = authToken()): TokenInfo | null {
  if (!token) return null;
  try {
    const part = token.split(".")[1];
    const payload = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    const raw: unknown = payload.scope ?? payload.scopes ?? "";
    const scopes = (Array.isArray(raw) ? raw.map(String) : String(raw).split(/\s+/)).filter(Boolean);
    const exp = typeof payload.exp === "number" ? new Date(payload.exp * 1000) : undefined;
    return { subject: String(payload.sub ?? "?"), scopes, expires: exp };
  } catch {
    return { subject: "?", scopes: [] };
  }
}

export function canTrade(): boolean {
  const info = tokenInfo();
  // No token: everything with auth off (`make up`); nothing once the gateway asked for one.
  if (!info) return !authRequired();
  if (tokenRefused()) return false;
  return info.scopes.some((s) => (LEVELS[s.toLowerCase()] ?? 0) >= LEVELS.trade);
}

/** The highest scope a token grants, for the header ("read", "trade", "admin"). */
export function topScope(info: TokenInfo): string {
  let best = "";
  for (const s of info.scopes) if ((LEVELS[s.toLowerCase()] ?? 0) > (LEVELS[best] ?? 0)) best = s.toLowerCase();
  return best || "no scope";
}
