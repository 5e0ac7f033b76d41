// The live dashboard: a list of the latest changes, counters for the session, filters, freshness.
import { KINDS } from "./kinds.js";
import { ChangeStream, clean, head } from "./live.js";
import {
  append, changeAmount, clear, el, kindTitle, METHODS, methodTitle, money, names, recordHref, timeEl,
} from "./common.js";

const MAX_ROWS = 200;
const BACKFILL = 50; // changes shown on arrival
const FILTERED_BACKFILL = 1000; // changes examined on arrival when filtering
const MAX_RESUME = 1000; // the furthest back a stored cursor resumes from
const CURSOR_KEY = "ocds-live:dashboard:cursor";
const FILTERS = ["buyer", "kind", "method", "min_amount", "ocid"];

const $ = (id) => document.getElementById(id);
const list = $("changes");
const form = $("filters");

const session = { changes: 0, byKind: new Map(), byMethod: new Map(), processes: new Map() };
let queue = [];
let frame = 0;
let lastChangeAt = null;
let cursor = null;

let currentFilters = {};

function readFilters() {
  const data = new FormData(form);
  const filters = {};
  for (const name of ["buyer", "kind", "method", "min_amount"]) filters[name] = data.get(name) ?? "";
  return clean(filters);
}

function fillForm(filters) {
  for (const name of ["buyer", "kind", "method", "min_amount"]) form.elements[name].value = filters[name] ?? "";
  const only = $("only-process");
  clear(only);
  only.hidden = !filters.ocid;
  if (filters.ocid) {
    append(only, [
      el("span", { class: "chip" }, "Solo el proceso / Only process ", el("code", {}, filters.ocid)),
      el("button", {
        type: "button", class: "link", onclick: () => {
          delete currentFilters.ocid;
          fillForm(currentFilters);
          applyFilters();
        },
      }, "Quitar / Remove"),
    ]);
  }
}

function setupControls() {
  const kindSelect = form.elements.kind;
  const prefixes = [...new Set(Object.keys(KINDS).map((code) => code.split(".")[0]))];
  const groupAll = el("optgroup", { label: "Etapas / Stages" });
  for (const prefix of prefixes) {
    const sample = Object.keys(KINDS).filter((code) => code.startsWith(`${prefix}.`));
    const label = sample.length > 1 ? `${prefix}.* (${sample.length})` : `${prefix}.*`;
    groupAll.append(el("option", { value: `${prefix}.` }, label));
  }
  const groupKinds = el("optgroup", { label: "Tipos / Kinds" });
  for (const [code, [es, en]] of Object.entries(KINDS)) groupKinds.append(el("option", { value: code }, `${es} / ${en}`));
  kindSelect.append(groupAll, groupKinds);
  for (const code of Object.keys(METHODS)) form.elements.method.append(el("option", { value: code }, methodTitle(code)));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    currentFilters = { ...readFilters(), ...(currentFilters.ocid ? { ocid: currentFilters.ocid } : {}) };
    applyFilters();
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    currentFilters = {};
    fillForm(currentFilters);
    applyFilters();
  });
}

function applyFilters() {
  const query = new URLSearchParams(currentFilters).toString();
  history.replaceState(null, "", query ? `/?${query}` : "/");
  resetSession();
  const back = Object.keys(currentFilters).length ? FILTERED_BACKFILL : BACKFILL;
  stream.subscribe(currentFilters, Math.max(0, (cursor ?? 0) - back));
}

function resetSession() {
  session.changes = 0;
  session.byKind.clear();
  session.byMethod.clear();
  session.processes.clear();
  queue = [];
  clear(list);
  list.setAttribute("aria-busy", "true");
  renderStats();
}

// ---- the list ------------------------------------------------------------------------------------------

function row(change) {
  const summary = change.summary ?? {};
  const kind = kindTitle(change.kind);
  const suppliers = names(summary.suppliers);
  const stage = String(change.kind ?? "").split(".")[0];
  const meta = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  return el("li", { class: `change stage-${stage.replace(/[^a-z]/g, "")}`, dataset: { cursor: change.cursor } },
    el("div", { class: "change-head" },
      el("span", { class: "kind" }, kind.es, kind.en ? el("span", { class: "en", lang: "en" }, ` / ${kind.en}`) : null),
      el("span", { class: "change-amount" }, money(changeAmount(summary), summary.currency))),
    el("a", { class: "change-title", href: change.kind === "project.updated"
      ? `/projects/${encodeURIComponent(change.ocid)}` : recordHref(change.ocid) }, summary.title || change.ocid),
    el("dl", { class: "change-meta" },
      meta("Comprador / Buyer", summary.buyer?.name || summary.buyer?.id || "—"),
      suppliers.length ? meta("Proveedores / Suppliers", suppliers.join(", ")) : null,
      meta("Procedimiento / Method", methodTitle(summary.method))),
    el("p", { class: "change-ocid muted" }, timeEl(change.date), " · ", el("code", {}, change.ocid),
      ` · #${change.cursor}`));
}

function count(map, key) {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function received(change, at) {
  session.changes += 1;
  count(session.byKind, change.kind ?? "record.updated");
  count(session.byMethod, change.summary?.method ?? "");
  const amount = changeAmount(change.summary ?? {});
  session.processes.set(change.ocid, { amount, currency: change.summary?.currency ?? null });
  queue.push(change);
  lastChangeAt = at;
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const batch = queue.slice(-MAX_ROWS);
  queue = [];
  const fragment = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i -= 1) fragment.append(row(batch[i]));
  list.prepend(fragment);
  while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
  $("empty").hidden = list.childElementCount > 0;
  renderStats();
}

// ---- the counters --------------------------------------------------------------------------------------

function countRows(tbody, entries, label) {
  const most = Math.max(1, ...entries.map(([, n]) => n));
  clear(tbody);
  for (const [key, n] of entries) {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${Math.round((100 * n) / most)}%`;
    tbody.append(el("tr", {}, el("th", { scope: "row" }, label(key)), el("td", { class: "bar-cell" }, bar),
      el("td", { class: "num" }, n.toLocaleString("es-MX"))));
  }
  if (!entries.length) tbody.append(el("tr", {}, el("td", { class: "muted", colspan: 3 }, "—")));
}

function renderStats() {
  $("total-changes").textContent = session.changes.toLocaleString("es-MX");
  $("total-processes").textContent = session.processes.size.toLocaleString("es-MX");
  const sums = new Map();
  for (const { amount, currency } of session.processes.values()) {
    if (typeof amount === "number") sums.set(currency || "MXN", (sums.get(currency || "MXN") ?? 0) + amount);
  }
  const amounts = [...sums.entries()].sort(([a], [b]) => (a === "MXN" ? -1 : b === "MXN" ? 1 : a.localeCompare(b)));
  const total = $("total-amount");
  clear(total);
  if (!amounts.length) total.textContent = "—";
  for (const [currency, sum] of amounts) total.append(el("span", { class: "money" }, money(sum, currency)));
  const kinds = Object.keys(KINDS);
  const byKind = [...session.byKind.entries()].sort(([a], [b]) => kinds.indexOf(a) - kinds.indexOf(b));
  countRows($("by-kind").tBodies[0], byKind, (code) => {
    const title = kindTitle(code);
    return [title.es, title.en ? el("span", { class: "en", lang: "en" }, ` / ${title.en}`) : null];
  });
  const byMethod = [...session.byMethod.entries()].sort(([, a], [, b]) => b - a);
  countRows($("by-method").tBodies[0], byMethod, methodTitle);
}

// ---- status and freshness ------------------------------------------------------------------------------

const STATES = {
  connecting: ["Conectando…", "Connecting…"],
  backfill: ["Cargando cambios recientes…", "Loading recent changes…"],
  live: ["En vivo", "Live"],
  waiting: ["Sin conexión", "Offline"],
  error: ["Error", "Error"],
  stopped: ["Detenido", "Stopped"],
};

function showStatus(state, detail) {
  const node = $("connection");
  const [es, en] = STATES[state] ?? [state, ""];
  node.dataset.state = state;
  clear(node);
  append(node, [es, el("span", { lang: "en" }, ` / ${en}`)]);
  if (state === "waiting") node.append(` — reintento en ${detail} s / retrying in ${detail} s`);
  if (state === "error" && detail) node.append(`: ${detail}`);
  if (state === "live") {
    if (frame) {
      cancelAnimationFrame(frame); // the backfill is complete: show it now, with the counters
      flush();
    }
    list.setAttribute("aria-busy", "false");
  }
}

let storedCursor = null;

function showFreshness() {
  if (cursor !== null && cursor !== storedCursor) {
    localStorage.setItem(CURSOR_KEY, String(cursor));
    storedCursor = cursor;
    $("position").textContent = `· cursor ${cursor}`;
  }
  const node = $("freshness");
  if (lastChangeAt === null) return;
  const seconds = Math.max(0, Math.round((Date.now() - lastChangeAt) / 1000));
  node.textContent = `Último cambio hace ${seconds} s / Last change ${seconds} s ago`;
  node.dataset.seconds = String(seconds);
}

// ---- start ---------------------------------------------------------------------------------------------

function startFrom(headCursor) {
  const back = Object.keys(currentFilters).length ? FILTERED_BACKFILL : BACKFILL;
  let after = Math.max(0, headCursor - back);
  const stored = Number.parseInt(localStorage.getItem(CURSOR_KEY) ?? "", 10);
  if (Number.isInteger(stored) && stored >= 0 && stored <= headCursor && stored < after) {
    after = Math.max(stored, headCursor - MAX_RESUME, 0); // show what came since the last visit too
  }
  return after;
}

const stream = new ChangeStream({
  after: "now",
  onChange: (change) => received(change, Date.now()),
  onStatus: showStatus,
  onCursor: (value) => {
    cursor = value;
  },
  onReset: async () => {
    localStorage.removeItem(CURSOR_KEY);
    resetSession();
    return Math.max(0, (await head()) - BACKFILL);
  },
});

async function main() {
  setupControls();
  const params = new URLSearchParams(location.search);
  for (const name of FILTERS) if (params.get(name)) currentFilters[name] = params.get(name);
  fillForm(currentFilters);
  renderStats();
  setInterval(showFreshness, 1000);
  let after = "now";
  try {
    after = startFrom(await head());
  } catch {
    after = "now";
  }
  stream.after = after;
  stream.cursor = typeof after === "number" ? after : null;
  stream.filters = currentFilters;
  stream.start();
}

main();
