// Active red flags counted by rule, buyer and month (/api/flags), with each rule's feeds.
import { clear, el, getJSON } from "./common.js";

const $ = (id) => document.getElementById(id);
const rows = (value) => (Array.isArray(value) ? value : []);

function table(headers, body) {
  return el("div", { class: "table-wrap" }, el("table", { class: "data" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, body.length ? body : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "—")))));
}

async function main() {
  const box = $("flags");
  const answer = await getJSON("/api/flags").catch(() => ({ ok: false, body: null }));
  box.setAttribute("aria-busy", "false");
  if (!answer.ok) {
    $("problem").textContent = "No se pudo cargar / Could not load";
    $("problem").hidden = false;
    return;
  }
  const counts = answer.body;
  const rule = (code) => encodeURIComponent(code);
  clear(box).append(
    el("h2", {}, "Por regla / By rule"),
    table(["Regla / Rule", "Alertas / Flags", "Feeds"], rows(counts.by_rule).map((r) => el("tr", {},
      el("td", {}, `${r.rule} — ${r.title}`), el("td", { class: "num" }, String(r.count)),
      el("td", {}, el("a", { href: `/feeds/alerts/rule/${rule(r.rule)}.atom` }, "Atom"), " · ",
        el("a", { href: `/api/alerts?rule=${rule(r.rule)}` }, "API"))))),
    el("h2", {}, "Por comprador / By buyer"),
    table(["Comprador / Buyer", "Alertas / Flags", "Feeds"], rows(counts.by_buyer).map((b) => el("tr", {},
      el("td", {}, String(b.buyer)), el("td", { class: "num" }, String(b.count)),
      el("td", {}, el("a", { href: `/feeds/alerts/buyer/${encodeURIComponent(b.buyer)}.atom` }, "Atom"))))),
    el("h2", {}, "Por mes / By month"),
    table(["Mes / Month", "Regla / Rule", "Alertas / Flags"], rows(counts.by_month).map((m) => el("tr", {},
      el("td", {}, String(m.month)), el("td", {}, String(m.rule)), el("td", { class: "num" }, String(m.count))))),
  );
}

main();
