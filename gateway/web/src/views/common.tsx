// Small shared pieces: loading / empty / error states, tables and a confirmation dialog.
import { useState, type ReactNode } from "react";

export function Loading({ what }: { what: string }) {
  return <div className="state loading">Loading {what}…</div>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

export function ErrorBox({ error, retry }: { error: string; retry?: () => void }) {
  return (
    <div className="state error" role="alert">
      {error}
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export interface Column<T> {
  title: string;
  render: (row: T) => ReactNode;
  numeric?: boolean;
}

/** A table with the three states: `rows` undefined = still loading. */
export function Table<T>({
  testId,
  columns,
  rows,
  rowKey,
  what,
  empty,
  error,
  retry,
}: {
  testId: string;
  columns: Column<T>[];
  rows: T[] | undefined;
  rowKey: (row: T) => string;
  what: string;
  empty: string;
  error?: string;
  retry?: () => void;
}) {
  if (error && rows === undefined) return <ErrorBox error={error} retry={retry} />;
  if (rows === undefined) return <Loading what={what} />;
  // A refresh that failed after data was shown: keep the (stale) rows, say so above them.
  const stale = error && retry ? <ErrorBox error={error} retry={retry} /> : null;
  if (rows.length === 0)
    return (
      <>
        {stale}
        <Empty>{empty}</Empty>
      </>
    );
  return (
    <>
    {stale}
    <table data-testid={testId}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c.title} className={c.numeric ? "num" : undefined}>
              {c.title}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={rowKey(row)} data-key={rowKey(row)}>
            {columns.map((c) => (
              <td key={c.title} className={c.numeric ? "num" : undefined}>
                {c.render(row)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
    </>
  );
}

/** A button that asks before doing something that cannot be undone. */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  danger,
  disabled,
}: {
  label: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => Promise<void>;
  danger?: boolean;
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await onConfirm();
      setOpen(false);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className={danger ? "danger" : undefined} disabled={disabled} onClick={() => setOpen(true)}>
        {label}
      </button>
      {open && (
        <div className="modal-backdrop">
          <div className="modal" role="dialog" aria-modal="true" aria-label={label}>
            <p>{question}</p>
            {error && <ErrorBox error={error} />}
            <div className="modal-actions">
              <button type="button" onClick={() => setOpen(false)} disabled={busy}>
                Keep
              </button>
              <button type="button" className={danger ? "danger" : "primary"} onClick={run} disabled={busy}>
                {busy ? "Working…" : confirmLabel}
              </button>
            </div>
          </div>
        </div>
      )}
    </>
  );
}
