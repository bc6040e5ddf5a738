// Whether the caller may trade. With no token (AUTH_MODE=disabled, the `make up` default) every
// caller has every scope. With a JWT, its "scope" (space-separated) or "scopes" claim decides,
// as in the services; the services still enforce it, this only hides buttons that would fail.
import { authToken } from "./api";

const LEVELS: Record<string, number> = { read: 1, trade: 2, admin: 3 };

export function canTrade(): boolean {
  const token = authToken();
  if (!token) return true;
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    const raw: unknown = payload.scope ?? payload.scopes ?? "";
    const scopes = Array.isArray(raw) ? raw.map(String) : String(raw).split(/\s+/);
    return scopes.some((s) => (LEVELS[s.toLowerCase()] ?? 0) >= LEVELS.trade);
  } catch {
    return false;
  }
}
