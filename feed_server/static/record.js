// One contracting process from /api/records/{ocid}: what it is, its stages and amounts, the releases that
// made it, the history of key fields (from the versioned release), and a live subscription to its changes.
import { ChangeStream } from "./live.js";
import {
  clear, el, getJSON, kindTitle, methodTitle, money, names, sameOrigin, statusTitle, timeEl,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const prefix = "/records/";
const ocid = decodeURIComponent(location.pathname.slice(location.pathname.indexOf(prefix) + prefix.length));
const api = `/api/records/${encodeURIComponent(ocid)}`;
const feed = `/feeds/ocid/${encodeURIComponent(ocid)}.atom`;

const obj = (value) => (value && typeof value === "object" && !Array.isArray(value) ? value : {});
const objs = (value) => (Array.isArray(value) ? value.filter((item) => item && typeof item === "object") : []);
const lower = (value) => (typeof value === "string" ? value.trim().toLowerCase() : null);

function amountOf(value) {
  const amount = obj(value).amount;
  if (typeof amount === "number") return amount;
  const parsed = typeof amount === "string" ? Number(amount.replace(/[,$\s]/g, "")) : NaN;
  return Number.isFinite(parsed) ? parsed : null;
}

function total(items, skip) {
  const counted = items.filter((item) => !skip.includes(lower(item.status)));
  const amounts = counted.map((item) => amountOf(item.value)).filter((a) => a !== null);
  const currencies = [...new Set(counted.map((item) => obj(item.value).currency).filter(Boolean))];
  return amounts.length ? money(amounts.reduce((a, b) => a + b, 0), currencies.length === 1 ? currencies[0] : currencies.join("/")) : "—";
}

const ORDER = { active: 0, pending: 1, complete: 2, terminated: 3, unsuccessful: 5, cancelled: 6 };

// The process status as core/summary.py defines it: the latest stage, its most alive status.
function processStatus(release) {
  const best = (items) => {
    const codes = items.map((item) => lower(item.status)).filter(Boolean);
    codes.sort((a, b) => (ORDER[a] ?? 4) - (ORDER[b] ?? 4) || a.localeCompare(b));
    return codes[0] ?? "unknown";
  };
  if (objs(release.contracts).length) return `contract.${best(objs(release.contracts))}`;
  if (objs(release.awards).length) return `award.${best(objs(release.awards))}`;
  if (Object.keys(obj(release.tender)).length) return `tender.${lower(release.tender.status) ?? "unknown"}`;
  return Object.keys(obj(release.planning)).length ? "planning.planned" : null;
}

function organization(release, value, role) {
  const org = obj(value);
  if (org.name || org.id) return org;
  return objs(release.parties).find((party) => Array.isArray(party.roles) && party.roles.includes(role)) ?? {};
}

function section(id, title, ...children) {
  return el("section", { id, class: "record-section", "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title` }, ...title.split(" / ")
    .map((part, i) => (i ? el("span", { class: "en", lang: "en" }, ` / ${part}`) : part))), ...children);
}

function table(headers, rows) {
  return el("div", { class: "table-wrap" }, el("table", { class: "data" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "—")))));
}

const tags = (list) => (Array.isArray(list) ? list : []).map((tag) => el("span", { class: "tag" }, String(tag)));

function overview(release, count) {
  const tender = obj(release.tender);
  const awards = objs(release.awards);
  const contracts = objs(release.contracts);
  const buyer = organization(release, release.buyer, "buyer");
  const entity = organization(release, tender.procuringEntity, "procuringEntity");
  const suppliers = names([...awards, ...contracts].flatMap((item) => objs(item.suppliers)));
  const fact = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  return section("overview", "Resumen / Overview", el("dl", { class: "facts" },
    fact("Comprador / Buyer", buyer.name || buyer.id || "—"),
    entity.name && entity.name !== buyer.name ? fact("Área contratante / Procuring entity", entity.name) : null,
    fact("Estado / Status", statusTitle(processStatus(release))),
    fact("Procedimiento / Method", methodTitle(tender.procurementMethod)),
    tender.procurementMethodDetails ? fact("Detalle / Details", String(tender.procurementMethodDetails)) : null,
    fact("Monto de la licitación / Tender value", money(amountOf(tender.value), obj(tender.value).currency)),
    fact("Monto adjudicado / Awarded", total(awards, ["cancelled", "unsuccessful"])),
    fact("Monto contratado / Contracted", total(contracts, ["cancelled"])),
    fact("Proveedores / Suppliers", [...new Set(suppliers)].join(", ") || "—"),
    fact("Última fecha / Latest date", timeEl(release.date)),
    fact("Entregas / Releases", String(count))));
}

function stages(release) {
  const awards = objs(release.awards).map((award) => el("tr", {},
    el("td", {}, el("code", {}, String(award.id ?? "—"))), el("td", {}, String(award.status ?? "—")),
    el("td", {}, timeEl(award.date)), el("td", {}, names(award.suppliers).join(", ") || "—"),
    el("td", { class: "num" }, money(amountOf(award.value), obj(award.value).currency))));
  const contracts = objs(release.contracts).map((contract) => el("tr", {},
    el("td", {}, el("code", {}, String(contract.id ?? "—"))), el("td", {}, String(contract.status ?? "—")),
    el("td", {}, timeEl(contract.dateSigned)),
    el("td", {}, timeEl(obj(contract.period).startDate, { withTime: false }), " – ",
      timeEl(obj(contract.period).endDate, { withTime: false })),
    el("td", { class: "num" }, money(amountOf(contract.value), obj(contract.value).currency))));
  return [
    section("awards", "Adjudicaciones / Awards", table(["Id", "Estado / Status", "Fecha / Date", "Proveedores / Suppliers",
      "Monto / Value"], awards)),
    section("contracts", "Contratos / Contracts", table(["Id", "Estado / Status", "Firma / Signed", "Vigencia / Period",
      "Monto / Value"], contracts)),
  ];
}

// The API links each release as {url, date, tag}; its id is the last part of the url.
function releaseId(url) {
  return decodeURIComponent(String(url ?? "").split("/").pop());
}

function timeline(releases) {
  const rows = [...releases].sort((a, b) => String(b.date).localeCompare(String(a.date))).map((release) => el("tr", {},
    el("td", {}, timeEl(release.date)), el("td", {}, tags(release.tag)),
    el("td", {}, el("a", { href: sameOrigin(release.url) }, el("code", {}, releaseId(release.url))))));
  return section("releases", "Entregas / Releases", table(["Fecha / Date", "Etiquetas / Tags", "Entrega (JSON) / Release (JSON)"], rows));
}

// ---- the history of a field, from the versioned release ------------------------------------------------

function versions(value) {
  return Array.isArray(value) ? value.filter((v) => v && typeof v === "object" && "releaseID" in v) : [];
}

function latest(value) {
  const list = versions(value);
  return list.length ? list[list.length - 1].value : undefined;
}

function history(title, list, format, numeric = false) {
  if (!list.length) return null;
  const rows = list.map((version, i) => el("tr", { class: i > 0 ? "changed" : null },
    el("td", {}, timeEl(version.releaseDate)), el("td", { class: numeric ? "num" : null }, format(version.value)),
    el("td", {}, tags(version.releaseTag)), el("td", {}, el("code", {}, String(version.releaseID)))));
  const label = `${list.length} ${list.length === 1 ? "versión / version" : "versiones / versions"}`;
  return el("div", { class: "history" }, el("h3", {}, title, " ", el("span", { class: "muted" }, `(${label})`)),
    table(["Fecha / Date", "Valor / Value", "Etiquetas / Tags", "Entrega / Release"], rows));
}

function histories(versioned) {
  const asText = (value) => (value === null || value === undefined ? "—" : String(value));
  const asMoney = (currencyHistory) => (value) => money(typeof value === "number" ? value : amountOf({ amount: value }),
    latest(currencyHistory));
  const tender = obj(versioned.tender);
  const parts = [
    history("Estado de la licitación / Tender status", versions(tender.status), asText),
    history("Monto de la licitación / Tender value", versions(obj(tender.value).amount),
      asMoney(obj(tender.value).currency), true),
  ];
  for (const award of objs(versioned.awards)) {
    const name = `adjudicación / award ${award.id ?? ""}`;
    parts.push(history(`Estado de la ${name} / status`, versions(award.status), asText));
    parts.push(history(`Monto de la ${name} / value`, versions(obj(award.value).amount), asMoney(obj(award.value).currency),
      true));
  }
  for (const contract of objs(versioned.contracts)) {
    const name = `del contrato / contract ${contract.id ?? ""}`;
    parts.push(history(`Estado ${name} / status`, versions(contract.status), asText));
    parts.push(history(`Monto ${name} / value`, versions(obj(contract.value).amount),
      asMoney(obj(contract.value).currency), true));
  }
  const found = parts.filter(Boolean);
  return section("history", "Historial de campos / Field history",
    el("p", { class: "muted" }, "Cada valor que tuvo el campo y la entrega que lo publicó. ",
      el("span", { lang: "en" }, "Every value the field had, and the release that published it.")),
    found.length ? found : el("p", { class: "muted" }, "—"));
}

function links() {
  return section("data", "Datos / Data", el("ul", { class: "links" },
    el("li", {}, el("a", { href: api, type: "application/json" }, "Registro OCDS (JSON) / OCDS record")),
    el("li", {}, el("a", { href: feed, type: "application/atom+xml" }, "Canal Atom / Atom feed")),
    el("li", {}, el("a", { href: `/?ocid=${encodeURIComponent(ocid)}` }, "Cambios en vivo / Live changes")),
    el("li", {}, el("a", { href: `/api/changes?ocid=${encodeURIComponent(ocid)}` }, "Cambios (JSON) / Changes"))));
}

// ---- loading -------------------------------------------------------------------------------------------

// Red flags the watchdog holds active for this process (docs/redflags.md), with their evidence.
function flagsSection(list) {
  const rows = list.map((flag) => el("tr", {},
    el("td", {}, el("a", { href: `/flags?rule=${encodeURIComponent(flag.rule)}` }, String(flag.title ?? flag.rule))),
    el("td", {}, el("ul", { class: "evidence" }, objs(flag.evidence).map((e) =>
      el("li", {}, el("code", {}, `${e.ocid && e.ocid !== ocid ? `${e.ocid} ` : ""}${e.pointer}`), ` = ${e.value}`)))),
    el("td", {}, timeEl(flag.raised_at))));
  return section("flags", "Alertas / Red flags", table(["Regla / Rule", "Evidencia / Evidence", "Desde / Since"], rows));
}

function problem(message, ...extra) {
  const box = $("problem");
  clear(box).append(message, ...extra);
  box.hidden = false;
}

async function load() {
  const box = $("record");
  box.setAttribute("aria-busy", "true");
  let answer;
  try {
    answer = await getJSON(api);
  } catch {
    answer = { ok: false, status: 0, body: null };
  }
  box.setAttribute("aria-busy", "false");
  if (answer.status === 404) {
    $("title").textContent = "Proceso no encontrado / Not found";
    problem("No hay un proceso con este identificador (ocid). ",
      el("span", { lang: "en" }, "There is no process with this identifier. "),
      el("a", { href: `/search?q=${encodeURIComponent(ocid)}` }, "Buscar / Search"));
    document.title = "Proceso no encontrado · Not found — ocds-live";
    return false;
  }
  if (!answer.ok) {
    problem(`No se pudo cargar / Could not load: ${answer.body?.error ?? (answer.status || "sin conexión / offline")}`);
    return false;
  }
  $("problem").hidden = true;
  const record = answer.body.records[0];
  const compiled = obj(record.compiledRelease);
  const title = obj(compiled.tender).title || objs(compiled.contracts).map((c) => c.title).find(Boolean)
    || objs(compiled.awards).map((a) => a.title).find(Boolean) || ocid;
  $("title").textContent = String(title);
  document.title = `${title} — ocds-live`;
  const releases = Array.isArray(record.releases) ? record.releases : [];
  const flagged = await getJSON(`/api/flags/${encodeURIComponent(ocid)}`).catch(() => ({ ok: false }));
  clear(box).append(overview(compiled, releases.length), flagsSection(flagged.ok ? objs(flagged.body.flags) : []),
    ...stages(compiled), timeline(releases), histories(obj(record.versionedRelease)), links());
  return true;
}

// The infrastructure project this process belongs to, if any, next to its ocid.
async function linkProject() {
  const answer = await getJSON(`/api/projects?view=overview&limit=1&ocid=${encodeURIComponent(ocid)}`).catch(() => null);
  const project = answer?.body?.projects?.[0];
  if (project) {
    $("ocid").after(" · Proyecto ", el("span", { lang: "en" }, "/ Project"), ": ",
      el("a", { id: "project-link", href: `/projects/${encodeURIComponent(project.id)}` }, project.title || project.id));
  }
}

const STATES = { live: "En vivo / Live", backfill: "En vivo / Live", connecting: "Conectando… / Connecting…",
  waiting: "Sin conexión / Offline", error: "Error", stopped: "Detenido / Stopped" };

async function main() {
  $("ocid").textContent = ocid;
  const found = await load();
  linkProject();
  const stream = new ChangeStream({
    after: "now",
    filters: { ocid },
    onStatus: (state, detail) => {
      $("connection").dataset.state = state === "backfill" ? "live" : state;
      $("connection").textContent = `${STATES[state] ?? state}${state === "waiting" ? ` (${detail} s)` : ""}`;
    },
    onChange: async (change) => {
      const kind = kindTitle(change.kind);
      $("notice").textContent = `Nuevo cambio / New change: ${kind.es} / ${kind.en} — actualizando… / updating…`;
      await load();
      $("notice").textContent = `Actualizado / Updated: ${kind.es} / ${kind.en}`;
    },
  });
  stream.start();
  if (!found) $("notice").textContent = "Esperando a que se publique / Waiting for it to be published";
}

main();
