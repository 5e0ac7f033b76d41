// What the pages share: building elements from data (always as text), formatting, names of codes.
import { KINDS } from "./kinds.js";

// el("a", {href: "/x", class: "y"}, "text", child, ...): strings become text nodes, never HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

const moneyFormats = new Map();

// An amount as money: MXN by default; an unknown or "mixed" currency shows the number and the code.
export function money(amount, currency) {
  if (typeof amount !== "number" || !Number.isFinite(amount)) return "—";
  const code = typeof currency === "string" && /^[A-Z]{3}$/.test(currency) ? currency : null;
  const key = code ?? "";
  if (!moneyFormats.has(key)) {
    let format;
    try {
      format = code
        ? new Intl.NumberFormat("es-MX", { style: "currency", currency: code, currencyDisplay: "code" })
        : new Intl.NumberFormat("es-MX", { maximumFractionDigits: 2 });
    } catch {
      format = new Intl.NumberFormat("es-MX", { maximumFractionDigits: 2 });
    }
    moneyFormats.set(key, format);
  }
  const text = moneyFormats.get(key).format(amount);
  return code || !currency ? text : `${text} ${currency}`;
}

const dateTime = new Intl.DateTimeFormat("es-MX", { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat("es-MX", { dateStyle: "medium" });

// <time datetime=...>, readable in Spanish; the published text when it is not a date.
export function timeEl(value, { withTime = true } = {}) {
  if (typeof value !== "string" || !value) return el("span", { class: "muted" }, "—");
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime())) return el("span", {}, value);
  const text = (withTime && value.length > 10 ? dateTime : dateOnly).format(parsed);
  return el("time", { datetime: value, title: value }, text);
}

// Not a kind of process change (core.changes.KINDS): an infrastructure project's (core/store/projects.py).
const PROJECT_KINDS = { "project.updated": ["Proyecto actualizado", "Project updated"] };

export function kindTitle(code) {
  const titles = KINDS[code] ?? PROJECT_KINDS[code];
  return titles ? { es: titles[0], en: titles[1] } : { es: String(code ?? "—"), en: "" };
}

export const METHODS = {
  open: ["Licitación pública", "Open"],
  selective: ["Invitación a cuando menos tres personas", "Selective"],
  limited: ["Contratación limitada", "Limited"],
  direct: ["Adjudicación directa", "Direct"],
};

export function methodTitle(code) {
  const titles = METHODS[code];
  return titles ? `${titles[0]} / ${titles[1]}` : code ? String(code) : "Sin método / No method";
}

const STAGES = { planning: "Planeación", tender: "Licitación", award: "Adjudicación", contract: "Contrato" };
const CODES = {
  planned: "planeada", planning: "en planeación", active: "activa", pending: "pendiente", complete: "concluida",
  cancelled: "cancelada", unsuccessful: "desierta", withdrawn: "retirada", terminated: "terminada",
  unknown: "sin estado",
};

// "contract.active" -> "Contrato: activa (contract.active)"
export function statusTitle(status) {
  if (typeof status !== "string" || !status) return "—";
  const [stage, code] = status.split(".", 2);
  if (!STAGES[stage]) return status;
  return `${STAGES[stage]}: ${CODES[code] ?? code ?? ""} (${status})`;
}

export function recordHref(ocid) {
  return `/records/${encodeURIComponent(ocid)}`;
}

// The path and query of a link the API made (its host may be a public name): fetched from this origin.
export function sameOrigin(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

export async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, ok: response.ok, body };
}

// The API's highlight snippet (HTML-escaped text with <mark> around matches), rebuilt as DOM nodes:
// nothing in it is ever parsed as HTML, so even a snippet that was not escaped can only show as text.
const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };

export function unescapeHTML(text) {
  return text.replace(/&(amp|lt|gt|quot|#x27|#39);/g, (entity) => ENTITIES[entity]);
}

export function highlight(snippet) {
  const fragment = document.createDocumentFragment();
  let marked = false;
  for (const part of String(snippet).split(/(<mark>|<\/mark>)/)) {
    if (part === "<mark>") marked = true;
    else if (part === "</mark>") marked = false;
    else if (part) fragment.append(marked ? el("mark", {}, unescapeHTML(part)) : unescapeHTML(part));
  }
  return fragment;
}

// The amount a change is about: the contract's, else the award's, else the tender's (as the filters do).
export function changeAmount(summary) {
  for (const key of ["contract_amount", "award_amount", "tender_amount"]) {
    if (typeof summary?.[key] === "number") return summary[key];
  }
  return null;
}

export function names(orgs) {
  return (Array.isArray(orgs) ? orgs : []).map((org) => org?.name || org?.id).filter(Boolean);
}
