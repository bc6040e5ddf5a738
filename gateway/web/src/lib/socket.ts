// A WebSocket to the gateway (`/ws/live` or `/ws/market`) speaking the `trading.gateway.v1`
// frames as JSON (see protos/trading/gateway/v1/gateway.proto): hello, subscribe → subscribed →
// snapshot → data, heartbeats both ways, and reconnect with `resume` from the last seq seen.
import { authToken, reportUnauthenticated } from "./api";

export type SocketState = "connecting" | "open" | "closed";

/** A `Subscribe` message (protobuf JSON); `subscriptionId` is always set by the caller. */
export interface Subscription {
  subscriptionId: string;
  channel: string;
  productIds?: string[];
  accountIds?: string[];
  interval?: string;
  depth?: number;
  targetId?: string;
}

// Server frames we read (protobuf JSON of ServerFrame: exactly one key per frame).
export interface Hello {
  connectionId: string;
  heartbeatIntervalMs?: number;
  authenticated?: boolean;
}
export interface SnapshotFrame {
  subscriptionId: string;
  channel: string;
  seq?: string;
  seqByProduct?: Record<string, string>;
  [state: string]: unknown;
}
export interface DataFrame {
  subscriptionId: string;
  channel: string;
  seq?: string;
  seqByProduct?: Record<string, string>;
  sendTime?: string;
  [payload: string]: unknown;
}
export interface ServerFrame {
  hello?: Hello;
  subscribed?: { subscriptionId: string };
  unsubscribed?: { subscriptionId: string };
  snapshot?: SnapshotFrame;
  data?: DataFrame;
  ping?: { nonce?: string };
  pong?: { nonce?: string };
  error?: { subscriptionId?: string; code?: string; message?: string };
  reset?: { subscriptionId: string; reason?: string; productIds?: string[] };
  closing?: { code?: string; reason?: string };
}

export interface SocketListener {
  onState?(state: SocketState, detail: string): void;
  onSnapshot?(frame: SnapshotFrame): void;
  onData?(frame: DataFrame): void;
  onError?(message: string): void;
  /** A subscription re-opened from its cursor: no snapshot follows, only missed updates. */
  onResumed?(subscriptionId: string): void;
}

const DEFAULT_HEARTBEAT_MS = 10_000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5_000;

export class GatewaySocket {
  private ws: WebSocket | null = null;
  private readonly subs = new Map<string, Subscription>();
  // Resume cursors: single-sequence channels by subscription, market channels per product.
  private readonly seq = new Map<string, string>();
  private readonly seqByProduct = new Map<string, Record<string, string>>();
  private readonly resuming = new Set<string>();
  private heartbeatMs = DEFAULT_HEARTBEAT_MS;
  private heartbeatTimer: number | undefined;
  private reconnectTimer: number | undefined;
  private attempts = 0;
  private lastFrameAt = 0;
  private stopped = true;
  private nonce = 0;
  state: SocketState = "closed";

  constructor(
    private readonly path: string,
    private readonly listener: SocketListener,
    // Market data is not resumed across reconnects: a fresh snapshot is cheaper than a replay.
    private readonly resume: boolean,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.reconnectTimer);
    window.clearInterval(this.heartbeatTimer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "view closed");
      this.ws = null;
    }
    this.setState("closed", "stopped");
  }

  subscribe(sub: Subscription): void {
    this.subs.set(sub.subscriptionId, sub);
    this.seq.delete(sub.subscriptionId);
    this.seqByProduct.delete(sub.subscriptionId);
    if (this.state === "open") this.send({ requestId: sub.subscriptionId, subscribe: sub });
  }

  unsubscribe(subscriptionId: string): void {
    if (!this.subs.delete(subscriptionId)) return;
    if (this.state === "open") this.send({ unsubscribe: { subscriptionId } });
  }

  private url(): string {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    // The token goes in the first frame (`auth`), not the URL, so it stays out of access logs.
    return `${proto}//${window.location.host}${this.path}`;
  }

  private connect(): void {
    this.setState("connecting", this.attempts ? `reconnecting (attempt ${this.attempts})` : "connecting");
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleReconnect(`cannot open socket: ${(err as Error).message}`);
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      window.clearInterval(this.heartbeatTimer);
      if (ev.code === 4401) reportUnauthenticated(ev.reason || "the gateway refused the token");
      this.scheduleReconnect(`closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`);
    };
    ws.onerror = () => {
      /* onclose follows and schedules the reconnect */
    };
  }

  private scheduleReconnect(detail: string): void {
    this.setState("closed", detail);
    if (this.stopped) return;
    // Exponential backoff with jitter so many browsers do not reconnect in lockstep.
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempts);
    this.attempts += 1;
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => this.connect(), base * (0.75 + Math.random() * 0.5));
  }

  private send(frame: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private onMessage(ev: MessageEvent): void {
    this.lastFrameAt = Date.now();
    let frame: ServerFrame;
    try {
      frame = JSON.parse(String(ev.data)) as ServerFrame;
    } catch {
      return;
    }
    if (frame.hello) this.onHello(frame.hello);
    else if (frame.subscribed) {
      const id = frame.subscribed.subscriptionId;
      if (this.resuming.delete(id)) this.listener.onResumed?.(id);
    }
    else if (frame.ping) this.send({ pong: { nonce: frame.ping.nonce ?? "" } });
    else if (frame.snapshot) {
      this.track(frame.snapshot);
      this.listener.onSnapshot?.(frame.snapshot);
    } else if (frame.data) {
      this.track(frame.data);
      this.listener.onData?.(frame.data);
    } else if (frame.reset) {
      // A fresh snapshot follows; forget the cursor so a reconnect before it does not replay.
      this.seq.delete(frame.reset.subscriptionId);
      this.seqByProduct.delete(frame.reset.subscriptionId);
    } else if (frame.error) {
      this.listener.onError?.(frame.error.message ?? frame.error.code ?? "error");
    }
  }

  private onHello(hello: Hello): void {
    this.attempts = 0;
    this.resuming.clear();
    this.heartbeatMs = hello.heartbeatIntervalMs || DEFAULT_HEARTBEAT_MS;
    window.clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = window.setInterval(() => this.heartbeat(), this.heartbeatMs);
    if (!hello.authenticated) {
      const token = authToken();
      // Auth is on and we have no token: nothing will be delivered until the user signs in.
      if (token) this.send({ auth: { token } });
      else reportUnauthenticated("sign in to receive live data");
    }
    const withCursor: Subscription[] = [];
    for (const sub of this.subs.values()) {
      const since = this.resume ? this.seq.get(sub.subscriptionId) : undefined;
      if (since !== undefined) {
        withCursor.push({ ...sub, sinceSeq: since } as Subscription);
        this.resuming.add(sub.subscriptionId);
      }
      else this.send({ requestId: sub.subscriptionId, subscribe: sub });
    }
    if (withCursor.length) this.send({ resume: { subscriptions: withCursor } });
    this.setState("open", `connected (${hello.connectionId})`);
  }

  private heartbeat(): void {
    // A gateway silent for three intervals is dead even if TCP has not noticed: reconnect.
    if (Date.now() - this.lastFrameAt > 3 * this.heartbeatMs) {
      this.ws?.close(4408, "heartbeat timeout");
      return;
    }
    this.nonce += 1;
    this.send({ ping: { nonce: String(this.nonce), time: new Date().toISOString() } });
  }

  private track(frame: { subscriptionId: string; seq?: string; seqByProduct?: Record<string, string> }): void {
    if (frame.seq && frame.seq !== "0") this.seq.set(frame.subscriptionId, frame.seq);
    if (frame.seqByProduct) {
      const prev = this.seqByProduct.get(frame.subscriptionId) ?? {};
      this.seqByProduct.set(frame.subscriptionId, { ...prev, ...frame.seqByProduct });
    }
  }

  private setState(state: SocketState, detail: string): void {
    this.state = state;
    this.listener.onState?.(state, detail);
  }
}
