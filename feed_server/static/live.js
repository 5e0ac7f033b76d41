// A resumable subscription to WS /ws/changes (docs/websocket.md): reconnects by itself, resuming after the
// last cursor it examined, so nothing is lost and nothing repeats.

const SILENCE_MS = 40000; // the server sends a heartbeat every 15 s; this long without a message: reconnect
const MAX_DELAY_MS = 30000;

export function wsURL(path, params) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  return `${scheme}//${location.host}${path}?${query}`;
}

export async function head() {
  const response = await fetch("/healthz", { cache: "no-store" });
  if (!response.ok) throw new Error(`/healthz answered ${response.status}`);
  const body = await response.json();
  return Number(body.head) || 0;
}

// status(state, detail): state is "connecting", "live", "backfill", "waiting", "stopped" or "error".
export class ChangeStream {
  constructor({ after, filters = {}, onChange, onStatus = () => {}, onCursor = () => {}, onReset = () => {} }) {
    this.after = after; // a cursor, "now" or "start"
    this.cursor = typeof after === "number" ? after : null; // the last cursor examined
    this.filters = filters;
    this.onChange = onChange;
    this.onStatus = onStatus;
    this.onCursor = onCursor;
    this.onReset = onReset; // the server does not know our cursor any more: the caller decides where to go
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.pending = false; // a subscribe message is on its way: ignore changes until "subscribed"
    this.stopped = false;
    this.restart = false;
    addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.ws) this.ws.close(1000);
    this.onStatus("stopped");
  }

  // New filters (and optionally a new starting cursor) without reconnecting when connected.
  subscribe(filters, after) {
    this.filters = filters;
    if (after !== undefined) {
      this.after = after;
      this.cursor = typeof after === "number" ? after : null;
    }
    const from = this.cursor ?? this.after;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.pending = true;
      this.onStatus("backfill");
      this.ws.send(JSON.stringify({ type: "subscribe", after: from, detail: "summary", filters: clean(filters) }));
    } else {
      this.reconnectNow();
    }
  }

  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      this.restart = true;
      this.ws.close(1000);
    } else {
      this.connect();
    }
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const from = this.cursor ?? this.after;
    const ws = new WebSocket(wsURL("/ws/changes", { after: from, detail: "summary", ...clean(this.filters) }));
    this.ws = ws;
    this.pending = true;
    this.onStatus("connecting");
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event);
    ws.onopen = () => this.alive(ws);
  }

  alive(ws) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => ws.close(), SILENCE_MS);
  }

  examined(cursor) {
    if (typeof cursor === "number" && (this.cursor === null || cursor > this.cursor)) {
      this.cursor = cursor;
      this.onCursor(cursor);
    }
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    this.alive(ws);
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.type) {
      case "subscribed":
        this.pending = false;
        this.attempt = 0;
        this.cursor = message.cursor;
        this.onCursor(message.cursor);
        this.onStatus("backfill");
        break;
      case "change":
        if (this.pending || (this.cursor !== null && message.cursor <= this.cursor)) return;
        this.examined(message.cursor);
        this.onChange(message.change, message.cursor);
        break;
      case "caught_up":
        if (this.pending) return;
        this.examined(message.cursor);
        this.onStatus("live");
        break;
      case "heartbeat":
        if (!this.pending) this.examined(message.cursor);
        break;
      case "error":
        if (message.code === "bad-message") this.pending = false;
        if (message.code === "unknown-cursor") {
          this.cursor = null;
          this.after = "now";
        }
        this.onStatus("error", message.message || message.code);
        break;
      default:
        break;
    }
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    clearTimeout(this.watchdog);
    this.ws = null;
    if (this.stopped) return;
    if (event.code === 4400) {
      this.onStatus("error", event.reason || "parámetros no válidos / bad parameters");
      return; // wait for new filters
    }
    if (event.code === 4004) {
      Promise.resolve(this.onReset()).then((after) => {
        this.after = after ?? "now";
        this.cursor = typeof this.after === "number" ? this.after : null;
        this.connect();
      });
      return;
    }
    if (this.restart) {
      this.restart = false;
      this.connect(); // we closed it to reconnect at once (the "online" event, new filters while connecting)
      return;
    }
    const base = event.code === 4429 ? 10000 : 1000;
    const delay = Math.min(MAX_DELAY_MS, base * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.onStatus("waiting", Math.round(delay / 1000));
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

export function clean(filters) {
  const out = {};
  for (const [name, value] of Object.entries(filters)) {
    if (value !== null && value !== undefined && String(value).trim() !== "") out[name] = String(value).trim();
  }
  return out;
}
