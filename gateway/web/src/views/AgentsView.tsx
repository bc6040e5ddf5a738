// Agents: decisions recorded by strategies and AI agents — inputs, reason, linked orders,
// model / token / cost fields and trace ids — and totals per agent. Bounded to one page.
import { useCallback, useEffect, useState } from "react";
import { ApiError, api, errorText } from "../lib/api";
import { fmtNum, fmtTime } from "../lib/format";
import type { Money } from "../lib/types";
import { Table } from "./common";

interface Decision {
  decisionId: string;
  strategy?: string;
  strategyInstanceId?: string;
  inputs?: Record<string, unknown>;
  reason?: string;
  model?: string;
  promptTokens?: string;
  completionTokens?: string;
  cost?: Money;
  traceId?: string;
  accountId?: string;
  productId?: string;
  orderIds?: string[];
  createTime?: string;
}
interface Summary {
  strategy?: string;
  decisionCount?: string;
  orderCount?: string;
  promptTokens?: string;
  completionTokens?: string;
  cost?: Money[];
  lastDecisionTime?: string;
}

const PAGE = 50;

export function AgentsView() {
  const [decisions, setDecisions] = useState<Decision[]>();
  const [summaries, setSummaries] = useState<Summary[]>();
  const [error, setError] = useState<string>();
  const [open, setOpen] = useState<string>();
  const [totalsNote, setTotalsNote] = useState<string>();

  const load = useCallback(() => {
    api
      .get<{ decisions?: Decision[] }>("/api/decisions", { page_size: PAGE })
      .then(async (d) => {
        const list = d.decisions ?? [];
        setError(undefined);
        setDecisions(list);
        try {
          const s = await api.get<{ summaries?: Summary[] }>("/api/decisions/summary");
          setSummaries(s.summaries ?? []);
          setTotalsNote(undefined);
        } catch (err) {
          // A service without SummarizeDecisions (501): total the page we have instead.
          if (!(err instanceof ApiError) || err.status !== 501) throw err;
          setSummaries(summarize(list));
          setTotalsNote(`Totals of the latest ${PAGE} decisions (the service has no summary yet).`);
        }
      })
      .catch((err) => setError(errorText(err)));
  }, []);
  useEffect(load, [load]);

  const shown = decisions?.find((d) => d.decisionId === open);
  return (
    <section className="view agents">
      <div className="toolbar">
        <span className="spacer" />
        <button type="button" onClick={load}>
          Refresh
        </button>
      </div>
      <h2>Totals per agent</h2>
      {totalsNote && <p className="note">{totalsNote}</p>}
      <Table
        testId="agent-totals"
        what="totals"
        rows={summaries}
        rowKey={(s) => s.strategy ?? ""}
        empty="No agent has recorded a decision yet."
        error={error}
        retry={load}
        columns={[
          { title: "Agent / strategy", render: (s) => s.strategy },
          { title: "Decisions", render: (s) => s.decisionCount ?? "0", numeric: true },
          { title: "Orders", render: (s) => s.orderCount ?? "0", numeric: true },
          { title: "Prompt tokens", render: (s) => fmtNum(s.promptTokens ?? "0"), numeric: true },
          { title: "Completion tokens", render: (s) => fmtNum(s.completionTokens ?? "0"), numeric: true },
          { title: "Cost", render: (s) => (s.cost ?? []).map((c) => `${fmtNum(c.amount, 4)} ${c.currency ?? ""}`).join(", ") || "—", numeric: true },
          { title: "Last decision", render: (s) => fmtTime(s.lastDecisionTime) },
        ]}
      />
      <h2>Decisions (latest {PAGE})</h2>
      <Table
        testId="decisions"
        what="decisions"
        rows={decisions}
        rowKey={(d) => d.decisionId}
        empty="No decisions recorded."
        error={error}
        columns={[
          { title: "Time", render: (d) => fmtTime(d.createTime) },
          { title: "Agent", render: (d) => d.strategy },
          { title: "Product", render: (d) => d.productId },
          { title: "Reason", render: (d) => <span title={d.reason}>{(d.reason ?? "").slice(0, 80)}</span> },
          { title: "Orders", render: (d) => (d.orderIds ?? []).length, numeric: true },
          { title: "Model", render: (d) => d.model || "—" },
          { title: "Tokens", render: (d) => (d.model ? `${d.promptTokens ?? 0} / ${d.completionTokens ?? 0}` : "—"), numeric: true },
          { title: "Cost", render: (d) => (d.cost ? `${fmtNum(d.cost.amount, 4)} ${d.cost.currency ?? ""}` : "—"), numeric: true },
          { title: "Trace", render: (d) => (d.traceId ? <code>{d.traceId.slice(0, 16)}</code> : "—") },
          {
            title: "",
            render: (d) => (
              <button type="button" onClick={() => setOpen(open === d.decisionId ? undefined : d.decisionId)}>
                {open === d.decisionId ? "Hide" : "Inputs"}
              </button>
            ),
          },
        ]}
      />
      {shown && (
        <div className="card detail" data-testid="decision-detail">
          <div className="card-title">Decision {shown.decisionId}</div>
          <p>{shown.reason}</p>
          <p>
            Orders: {(shown.orderIds ?? []).join(", ") || "none"} · trace {shown.traceId || "—"}
          </p>
          <pre>{JSON.stringify(shown.inputs ?? {}, null, 2)}</pre>
        </div>
      )}
    </section>
  );
}

function summarize(decisions: Decision[]): Summary[] {
  const by = new Map<string, { s: Summary; cost: Map<string, number> }>();
  for (const d of decisions) {
    const key = d.strategy ?? "";
    const cur: { s: Summary; cost: Map<string, number> } = by.get(key) ?? { s: { strategy: key, decisionCount: "0", orderCount: "0", promptTokens: "0", completionTokens: "0" }, cost: new Map() };
    const add = (a: string | undefined, b: number) => String(Number(a ?? 0) + b);
    cur.s.decisionCount = add(cur.s.decisionCount, 1);
    cur.s.orderCount = add(cur.s.orderCount, (d.orderIds ?? []).length);
    cur.s.promptTokens = add(cur.s.promptTokens, Number(d.promptTokens ?? 0));
    cur.s.completionTokens = add(cur.s.completionTokens, Number(d.completionTokens ?? 0));
    if (d.cost?.currency) cur.cost.set(d.cost.currency, (cur.cost.get(d.cost.currency) ?? 0) + Number(d.cost.amount ?? 0));
    if (!cur.s.lastDecisionTime || (d.createTime ?? "") > cur.s.lastDecisionTime) cur.s.lastDecisionTime = d.createTime;
    by.set(key, cur);
  }
  return [...by.values()].map(({ s, cost }) => ({ ...s, cost: [...cost].map(([currency, amount]) => ({ currency, amount: String(amount) })) }));
}
