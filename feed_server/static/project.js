// One infrastructure project from /api/projects/{id}/overview: budget against contracted and paid, the
// timeline of its contracting processes (each linking to its page), suppliers and amendments, its data
// (OC4IDS JSON, Atom, changes), and a live subscription to its changes and its processes'.
import { ChangeStream } from "./live.js";
import { clear, el, getJSON, kindTitle, money, names, recordHref, statusTitle, timeEl } from "./common.js";

const $ = (id) => document.getElementById(id);
const prefix = "/projects/";
const pid = decodeURIComponent(location.pathname.slice(location.pathname.indexOf(prefix) + prefix.length));
const enc = encodeURIComponent(pid);

function section(id, title, ...children) {
  const [es, en] = title.split(" / ");
  return el("section", { id, class: "record-section", "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title` }, es, en ? el("span", { class: "en", lang: "en" }, ` / ${en}`) : null), ...children);
}

function table(headers, rows) {
  return el("div", { class: "table-wrap" }, el("table", { class: "data" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "—")))));
}

const sums = (list) => (Array.isArray(list) && list.length ? list.map((i) => money(i.amount, i.currency)).join(" + ") : "—");
const total = (list) => (Array.isArray(list) ? list.reduce((a, i) => a + (typeof i.amount === "number" ? i.amount : 0), 0) : 0);

// Budget vs contracted vs paid, as numbers and as bars scaled to the largest of the three.
function money3(figures) {
  const budget = figures.budget?.amount ?? 0;
  const values = [["Presupuesto / Budget", budget, figures.budget ? money(budget, figures.budget.currency) : "—"],
    ["Contratado / Contracted", total(figures.contracted), sums(figures.contracted)],
    ["Pagado / Paid", total(figures.paid), sums(figures.paid)]];
  const top = Math.max(...values.map((v) => v[1]), 1);
  return el("table", { class: "money", id: "money" }, el("tbody", {}, values.map(([label, amount, text]) => el("tr", {},
    el("th", { scope: "row" }, label), el("td", { class: "num" }, text),
    el("td", { class: "bar-cell" }, el("span", { class: "bar", dataset: { share: String(amount / top) } }))))));
}

function overview(data) {
  const f = data.figures ?? {};
  const fact = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  const authority = f.public_authority?.name || (f.buyers ?? []).join(", ") || "—";
  return section("overview", "Resumen / Overview", el("dl", { class: "facts" },
    fact("Autoridad pública / Public authority", authority),
    fact("Estado / Status", f.status || "—"),
    data.sector ? fact("Sector", [].concat(data.sector).join(", ")) : null,
    data.type ? fact("Tipo / Type", String(data.type)) : null,
    fact("Procesos de contratación / Contracting processes", String(f.processes ?? 0)),
    fact("Modificaciones a contratos / Contract amendments", String(f.amendments ?? 0)),
    fact("Actualizado / Updated", timeEl(data.updated_at))), money3(f),
    data.description ? el("p", { class: "lead" }, String(data.description).slice(0, 600)) : null);
}

function timeline(processes) {
  const rows = processes.map((p) => {
    const s = p.summary ?? {};
    const amount = s.contract_amount ?? s.award_amount ?? s.tender_amount;
    return el("tr", {}, el("td", {}, timeEl(p.date, { withTime: false })),
      el("td", {}, el("a", { href: recordHref(p.ocid) }, s.title || p.ocid), el("br"), el("code", { class: "muted" }, p.ocid)),
      el("td", {}, statusTitle(s.status)), el("td", { class: "num" }, money(amount, s.currency)),
      el("td", {}, names(s.suppliers).join(", ") || "—"));
  });
  return section("processes", "Procesos de contratación / Contracting processes",
    table(["Fecha / Date", "Proceso / Process", "Estado / Status", "Monto / Amount", "Proveedores / Suppliers"], rows));
}

function suppliers(processes) {
  const by = new Map();
  for (const p of processes) {
    const s = p.summary ?? {};
    for (const name of new Set(names(s.suppliers))) {
      const entry = by.get(name) ?? { count: 0, amount: 0, currency: s.currency };
      entry.count += 1;
      if (typeof s.contract_amount === "number") entry.amount += s.contract_amount;
      by.set(name, entry);
    }
  }
  const rows = [...by.entries()].sort((a, b) => b[1].amount - a[1].amount || a[0].localeCompare(b[0])).slice(0, 50)
    .map(([name, e]) => el("tr", {}, el("td", {}, name), el("td", { class: "num" }, String(e.count)),
      el("td", { class: "num" }, money(e.amount, e.currency))));
  return section("suppliers", "Proveedores / Suppliers",
    table(["Proveedor / Supplier", "Procesos / Processes", "Contratado / Contracted"], rows));
}

function links() {
  return section("data", "Datos / Data", el("ul", { class: "links" },
    el("li", {}, el("a", { href: `/api/projects/${enc}`, type: "application/json" }, "Proyecto OC4IDS (JSON) / OC4IDS project")),
    el("li", {}, el("a", { href: `/feeds/project/${enc}.atom`, type: "application/atom+xml" }, "Canal Atom / Atom feed")),
    el("li", {}, el("a", { href: `/api/changes?project=${enc}` }, "Cambios (JSON) / Changes"))));
}

async function load() {
  const box = $("project");
  box.setAttribute("aria-busy", "true");
  const answer = await getJSON(`/api/projects/${enc}/overview`).catch(() => ({ ok: false, status: 0, body: null }));
  box.setAttribute("aria-busy", "false");
  if (answer.status === 404) {
    $("title").textContent = "Proyecto no encontrado / Not found";
    $("problem").textContent = "No hay un proyecto con este identificador. / There is no project with this identifier.";
    $("problem").hidden = false;
    return false;
  }
  if (!answer.ok) {
    $("problem").textContent = `No se pudo cargar / Could not load: ${answer.body?.error ?? (answer.status || "sin conexión / offline")}`;
    $("problem").hidden = false;
    return false;
  }
  $("problem").hidden = true;
  const data = answer.body;
  $("title").textContent = data.title || pid;
  document.title = `${data.title || pid} — ocds-live`;
  clear(box).append(overview(data), timeline(data.processes ?? []), suppliers(data.processes ?? []), links());
  for (const bar of box.querySelectorAll(".bar[data-share]")) bar.style.width = `${Math.round(Number(bar.dataset.share) * 100)}%`;
  return true;
}

const STATES = { live: "En vivo / Live", backfill: "En vivo / Live", connecting: "Conectando… / Connecting…",
  waiting: "Sin conexión / Offline", error: "Error", stopped: "Detenido / Stopped" };

async function main() {
  $("pid").textContent = pid;
  await load();
  new ChangeStream({
    after: "now",
    filters: { project: pid },
    onStatus: (state, detail) => {
      $("connection").dataset.state = state === "backfill" ? "live" : state;
      $("connection").textContent = `${STATES[state] ?? state}${state === "waiting" ? ` (${detail} s)` : ""}`;
    },
    onChange: async (change) => {
      const kind = kindTitle(change.kind);
      $("notice").textContent = `Nuevo cambio / New change: ${kind.es} / ${kind.en}`;
      await load();
    },
  }).start();
}

main();
