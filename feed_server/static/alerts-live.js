// The dashboard's "latest alerts" panel: the newest alerts of WS /ws/alerts (docs/websocket.md#alerts-ws-ws-alerts),
// backfilled from a few cursors before the head, then live; it reconnects by itself after the last cursor it saw.
import { el, sameOrigin, timeEl } from "./common.js";

const SHOWN = 10; // alerts kept on screen
const SILENCE_MS = 40000; // heartbeats come every 15 s: this long without a message, reconnect
const KINDS = { "alert.raised": ["Alerta", "Alert"], "alert.withdrawn": ["Retirada", "Withdrawn"] };

const list = document.getElementById("alerts");
const empty = document.getElementById("alerts-empty");
let cursor = null; // the last alerts cursor examined
let delay = 500;
let silence = 0;

function row(message) {
  const alert = message.alert;
  const [es, en] = KINDS[alert.kind] ?? ["Alerta", "Alert"];
  const subject = alert.ocid ?? alert.key;
  const [titleEs, titleEn] = String(alert.title ?? alert.rule).split(" / ");
  return el("li", { class: `alert-row ${alert.kind === "alert.withdrawn" ? "withdrawn" : "raised"}`,
    "data-cursor": String(message.cursor), "data-rule": alert.rule },
  el("span", { class: "alert-kind" }, es, " ", el("span", { lang: "en" }, `/ ${en}`)),
  el("span", { class: "alert-rule" }, el("code", {}, alert.rule), " ", titleEs,
    titleEn ? el("span", { class: "en", lang: "en" }, ` / ${titleEn}`) : ""),
  el("span", { class: "alert-subject" }, alert.record_url
    ? el("a", { href: sameOrigin(alert.record_url) }, subject) : subject,
  alert.buyer ? el("span", { class: "muted" }, ` · ${alert.buyer}`) : "",
  alert.created_at ? el("span", { class: "muted" }, " · ", timeEl(alert.created_at)) : ""));
}

function show(message) {
  list.prepend(row(message));
  while (list.children.length > SHOWN) list.lastElementChild.remove();
  empty.hidden = true;
}

function connect(after) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/alerts?after=${after}`);
  const quiet = () => {
    clearTimeout(silence);
    silence = setTimeout(() => ws.close(), SILENCE_MS);
  };
  ws.onopen = quiet;
  ws.onmessage = (event) => {
    quiet();
    const message = JSON.parse(event.data);
    if (message.type === "alert") show(message);
    if (typeof message.cursor === "number") cursor = Math.max(cursor ?? 0, message.cursor);
    if (message.type === "caught_up") {
      delay = 500;
      list.setAttribute("aria-busy", "false");
    }
  };
  ws.onclose = (event) => {
    clearTimeout(silence);
    if (event.code === 4004) cursor = null; // the feed does not know our cursor: start again from its newest
    setTimeout(() => start(), delay);
    delay = Math.min(delay * 2, 30000);
  };
}

async function start() {
  if (cursor !== null) return connect(cursor);
  try {
    const response = await fetch("/api/alerts?limit=1", { cache: "no-store" });
    const head = Number((await response.json()).head) || 0;
    connect(Math.max(0, head - SHOWN));
  } catch {
    setTimeout(() => start(), delay);
    delay = Math.min(delay * 2, 30000);
  }
}

if (list) start();
