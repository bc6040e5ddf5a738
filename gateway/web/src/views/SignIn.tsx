// Sign-in for gateways with AUTH_MODE=jwt: paste a bearer token (JWT); it is kept in the tab's
// sessionStorage and sent on every API call (Authorization) and WebSocket (`auth` frame).
import { useState } from "react";
import { setAuthToken, tokenRefused } from "../lib/api";
import { fmtDateTime } from "../lib/format";
import { tokenInfo, topScope, type TokenInfo } from "../lib/scopes";

/** Header badge: who is signed in, with which scope; Sign in / Sign out. */
export function AuthBadge({ info, onSignIn }: { info: TokenInfo | null; onSignIn: () => void }) {
  if (!info)
    return (
      <button type="button" className="link" onClick={onSignIn} data-testid="sign-in-open">
        Sign in
      </button>
    );
  return (
    <span className="auth" data-testid="auth-badge" title={info.expires ? `token expires ${fmtDateTime(info.expires.toISOString())}` : undefined}>
      {info.subject} <span className="badge">{tokenRefused() ? "refused" : topScope(info)}</span>{" "}
      <button type="button" className="link" onClick={() => setAuthToken(null)}>
        Sign out
      </button>
    </span>
  );
}

/** The sign-in panel; `reason` says why it is shown (e.g. the gateway's 401 message). */
export function SignInPanel({ reason, onClose }: { reason?: string; onClose: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const value = token.trim().replace(/^Bearer\s+/i, "");
    const info = tokenInfo(value);
    if (!value || value.split(".").length !== 3 || !info || info.subject === "?") {
      setError("That is not a JWT (three dot-separated parts with a `sub` claim).");
      return;
    }
    if (info.expires && info.expires.getTime() < Date.now()) {
      setError(`That token expired at ${fmtDateTime(info.expires.toISOString())}.`);
      return;
    }
    setAuthToken(value);
    onClose();
  };
  return (
    <form className="signin" data-testid="sign-in" onSubmit={submit}>
      <h2>Sign in</h2>
      {reason && (
        <p className="state error" role="alert" data-testid="sign-in-reason">
          The gateway requires a valid token: {reason}
        </p>
      )}
      <label>
        Access token (JWT)
        <textarea rows={3} value={token} onChange={(e) => setToken(e.target.value)} placeholder="eyJhbGciOi…" spellCheck={false} />
      </label>
      <p className="note">Kept in this tab only (sessionStorage). A `read` token shows data; `trade` also allows cancelling orders, the kill switch and reconciling.</p>
      {error && <p className="state error">{error}</p>}
      <div className="modal-actions">
        <button type="button" onClick={onClose}>
          Close
        </button>
        <button type="submit" className="primary">
          Sign in
        </button>
      </div>
    </form>
  );
}
