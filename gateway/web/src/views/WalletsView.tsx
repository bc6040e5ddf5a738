// Wallets: balances per wallet and currency, reconcile button, reconciliation history with the
// latest discrepancies highlighted (history updates live over `/ws/live` CHANNEL_RECONCILIATIONS).
import { useCallback, useEffect, useState } from "react";
import { api, errorText } from "../lib/api";
import { fmtEnum, fmtNum, fmtTime } from "../lib/format";
import { canTrade } from "../lib/scopes";
import { GatewaySocket } from "../lib/socket";
import { ConfirmButton, Table } from "./common";

interface Balance {
  walletId?: string;
  currency?: string;
  total?: string;
  available?: string;
  hold?: string;
  source?: string;
}
interface Wallet {
  walletId: string;
  displayName?: string;
  kind?: string;
  venue?: string;
  balances?: Balance[];
}
interface Discrepancy {
  walletId?: string;
  currency?: string;
  ledgerBalance?: string;
  venueBalance?: string;
  difference?: string;
}
interface Run {
  runId: string;
  seq?: string;
  status?: string;
  trigger?: string;
  checkedCount?: number;
  discrepancies?: Discrepancy[];
  error?: string;
  startTime?: string;
  endTime?: string;
}

interface LedgerEntry {
  entryId: string;
  kind?: string;
  description?: string;
  postings?: { account?: string; walletId?: string; currency?: string; amount?: string }[];
  effectiveTime?: string;
  fillId?: string;
}

const HISTORY = 20;
const LEDGER_PAGE = 25;

export function WalletsView() {
  const [wallets, setWallets] = useState<Wallet[]>();
  const [runs, setRuns] = useState<Record<string, Run>>();
  const [error, setError] = useState<string>();
  const [ledger, setLedger] = useState<LedgerEntry[]>();
  const [ledgerError, setLedgerError] = useState<string>();
  const [ledgerWallet, setLedgerWallet] = useState(""); // "" = every wallet
  // Paged newest first: the token of each page seen so far, so "Newer" can go back.
  const [ledgerTokens, setLedgerTokens] = useState<string[]>([""]);
  const [ledgerPage, setLedgerPage] = useState(0);
  const [ledgerNext, setLedgerNext] = useState<string>();

  const loadLedger = useCallback(() => {
    const path = ledgerWallet ? `/api/wallets/${encodeURIComponent(ledgerWallet)}/ledger` : "/api/ledger";
    api
      .get<{ entries?: LedgerEntry[]; nextPageToken?: string }>(path, { page_size: LEDGER_PAGE, page_token: ledgerTokens[ledgerPage] || undefined })
      .then((r) => {
        setLedger(r.entries ?? []);
        setLedgerNext(r.nextPageToken || undefined);
        setLedgerError(undefined);
      })
      .catch((err) => setLedgerError(errorText(err)));
  }, [ledgerWallet, ledgerTokens, ledgerPage]);
  const olderLedger = () => {
    if (!ledgerNext) return;
    setLedgerTokens((t) => [...t.slice(0, ledgerPage + 1), ledgerNext]);
    setLedgerPage(ledgerPage + 1);
  };
  useEffect(loadLedger, [loadLedger]);

  // The error stays until a reload succeeds (no flicker while reloads keep failing).
  const load = useCallback(() => {
    Promise.all([
      api.get<{ wallets?: Wallet[] }>("/api/wallets", { page_size: 50 }),
      api.get<{ runs?: Run[] }>("/api/reconciliations", { page_size: HISTORY }),
    ])
      .then(([w, r]) => {
        setError(undefined);
        setWallets(w.wallets ?? []);
        setRuns((cur) => ({ ...cur, ...Object.fromEntries((r.runs ?? []).map((x) => [x.runId, x])) }));
      })
      .catch((err) => setError(errorText(err)));
  }, []);
  useEffect(load, [load]);

  useEffect(() => {
    const merge = (frame: Record<string, unknown>) => {
      const list = (frame.reconciliations as { runs?: Run[] } | undefined)?.runs ?? [];
      if (list.length) setRuns((cur) => ({ ...cur, ...Object.fromEntries(list.map((x) => [x.runId, x])) }));
      // A finished run may have changed balances: refresh them.
      if (list.some((x) => x.endTime)) {
        load();
        loadLedger();
      }
    };
    const socket = new GatewaySocket("/ws/live", { onSnapshot: merge, onData: merge }, true);
    socket.subscribe({ subscriptionId: "reconciliations", channel: "CHANNEL_RECONCILIATIONS" });
    socket.start();
    return () => socket.stop();
  }, [load, loadLedger]);

  const balances = wallets?.flatMap((w) => (w.balances ?? []).map((b) => ({ ...b, wallet: w })));
  const history = runs
    ? Object.values(runs)
        .sort((a, b) => Date.parse(b.startTime ?? "") - Date.parse(a.startTime ?? ""))
        .slice(0, HISTORY)
    : undefined;
  const latest = history?.find((r) => r.endTime);
  const flagged = new Set((latest?.discrepancies ?? []).map((d) => `${d.walletId}|${d.currency}`));

  return (
    <section className="view wallets">
      <div className="toolbar">
        <span className="spacer" />
        {canTrade() && (
          <ConfirmButton
            label="Reconcile"
            question="Reconcile every wallet's ledger against its venue now?"
            confirmLabel="Reconcile"
            onConfirm={async () => {
              await api.post("/api/reconciliations", {});
              load();
            }}
          />
        )}
      </div>
      <h2>Balances</h2>
      <Table
        testId="balances"
        what="balances"
        rows={balances}
        rowKey={(b) => `${b.walletId}|${b.currency}`}
        empty="No wallets."
        error={error}
        retry={load}
        columns={[
          { title: "Wallet", render: (b) => b.wallet.displayName ?? b.walletId },
          { title: "Kind", render: (b) => fmtEnum(b.wallet.kind, "WALLET_KIND_") },
          {
            title: "Currency",
            render: (b) => (
              <span className={flagged.has(`${b.walletId}|${b.currency}`) ? "discrepancy" : undefined}>{b.currency}</span>
            ),
          },
          { title: "Total", render: (b) => fmtNum(b.total), numeric: true },
          { title: "Available", render: (b) => fmtNum(b.available), numeric: true },
          { title: "Hold", render: (b) => fmtNum(b.hold), numeric: true },
          { title: "Source", render: (b) => fmtEnum(b.source, "BALANCE_SOURCE_") },
        ]}
      />
      <h2>Reconciliations</h2>
      <Table
        testId="reconciliations"
        what="reconciliations"
        rows={history}
        rowKey={(r) => r.runId}
        empty="No reconciliation has run yet."
        error={error}
        columns={[
          { title: "Started", render: (r) => fmtTime(r.startTime) },
          { title: "Finished", render: (r) => fmtTime(r.endTime) },
          { title: "Trigger", render: (r) => fmtEnum(r.trigger, "RECONCILIATION_TRIGGER_") },
          { title: "Status", render: (r) => fmtEnum(r.status, "RECONCILIATION_STATUS_") },
          { title: "Checked", render: (r) => r.checkedCount ?? 0, numeric: true },
          {
            title: "Discrepancies",
            render: (r) =>
              r.discrepancies?.length ? (
                <span className="discrepancy">
                  {r.discrepancies
                    .map((d) => `${d.walletId} ${d.currency}: ledger ${fmtNum(d.ledgerBalance)} vs venue ${fmtNum(d.venueBalance)}`)
                    .join("; ")}
                </span>
              ) : (
                r.error ?? "none"
              ),
          },
        ]}
      />
      <h2>
        Ledger ({LEDGER_PAGE} entries per page, newest first){" "}
        <select
          aria-label="Ledger wallet"
          value={ledgerWallet}
          onChange={(e) => {
            setLedgerWallet(e.target.value);
            setLedgerTokens([""]);
            setLedgerPage(0);
          }}
        >
          <option value="">all wallets</option>
          {(wallets ?? []).map((w) => (
            <option key={w.walletId} value={w.walletId}>
              {w.displayName ?? w.walletId}
            </option>
          ))}
        </select>
      </h2>
      <div className="pager">
        <button type="button" disabled={ledgerPage === 0} onClick={() => setLedgerPage(ledgerPage - 1)}>
          ← Newer
        </button>
        <span data-testid="ledger-page">page {ledgerPage + 1}</span>
        <button type="button" disabled={!ledgerNext} onClick={olderLedger}>
          Older →
        </button>
      </div>
      <Table
        testId="ledger"
        what="ledger entries"
        rows={ledger}
        rowKey={(e) => e.entryId}
        empty="The ledger has no entries yet."
        error={ledgerError}
        retry={loadLedger}
        columns={[
          { title: "Time", render: (e) => fmtTime(e.effectiveTime) },
          { title: "Kind", render: (e) => fmtEnum(e.kind, "ENTRY_KIND_") },
          { title: "Description", render: (e) => e.description },
          {
            title: "Postings",
            render: (e) =>
              (e.postings ?? []).map((p) => `${p.walletId ?? p.account} ${fmtNum(p.amount)} ${p.currency ?? ""}`).join(" · "),
          },
        ]}
      />
    </section>
  );
}
