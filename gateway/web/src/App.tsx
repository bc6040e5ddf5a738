// The shell: a tab per view, chosen by the URL hash (#/live, #/market...) so every view has a
// link and the gateway's static file server needs no fallback route.
import { useEffect, useState } from "react";
import { onAuthEvent } from "./lib/api";
import { timeZone } from "./lib/format";
import { tokenInfo } from "./lib/scopes";
import { AgentsView } from "./views/AgentsView";
import { BacktestsView } from "./views/BacktestsView";
import { LiveView } from "./views/LiveView";
import { MarketView } from "./views/MarketView";
import { AuthBadge, SignInPanel } from "./views/SignIn";
import { WalletsView } from "./views/WalletsView";

const VIEWS = [
  { id: "live", label: "Live", render: () => <LiveView /> },
  { id: "market", label: "Market", render: () => <MarketView /> },
  { id: "backtests", label: "Backtests", render: () => <BacktestsView /> },
  { id: "wallets", label: "Wallets", render: () => <WalletsView /> },
  { id: "agents", label: "Agents", render: () => <AgentsView /> },
] as const;

function currentView(): string {
  const id = window.location.hash.replace(/^#\/?/, "").split("/")[0];
  return VIEWS.some((v) => v.id === id) ? id : "live";
}

export function App() {
  const [view, setView] = useState(currentView);
  useEffect(() => {
    const onHash = () => setView(currentView());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  // Signing in or out remounts the view so every request and socket uses the new token.
  const [authVersion, setAuthVersion] = useState(0);
  const [signIn, setSignIn] = useState<{ reason?: string }>();
  useEffect(
    () =>
      onAuthEvent((e) => {
        if (e.unauthenticated !== undefined) setSignIn({ reason: e.unauthenticated });
        else {
          setSignIn(undefined);
          setAuthVersion((v) => v + 1);
        }
      }),
    [],
  );
  const active = VIEWS.find((v) => v.id === view) ?? VIEWS[0];
  return (
    <div className="app">
      <header>
        <span className="brand">tradeplane</span>
        <nav>
          {VIEWS.map((v) => (
            <a key={v.id} href={`#/${v.id}`} className={v.id === view ? "active" : undefined} aria-current={v.id === view ? "page" : undefined}>
              {v.label}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        <small className="tz" title="Times are shown in this time zone">
          {timeZone}
        </small>
        <AuthBadge key={authVersion} info={tokenInfo()} onSignIn={() => setSignIn({})} />
      </header>
      {signIn && <SignInPanel reason={signIn.reason} onClose={() => setSignIn(undefined)} />}
      <main key={`${active.id}|${authVersion}`}>{active.render()}</main>
    </div>
  );
}
