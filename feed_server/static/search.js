// Search over /api/search: the form and the page's URL hold the same parameters, so every search (and
// every page of it) has a link of its own; facets narrow the search; links.next gives the next page.
import {
  clear, el, getJSON, highlight, METHODS, methodTitle, money, names, recordHref, sameOrigin, statusTitle, timeEl,
} from "./common.js";

const FIELDS = ["q", "buyer", "supplier", "method", "status", "from", "to", "min_amount", "max_amount", "sort"];
const $ = (id) => document.getElementById(id);
const form = $("search");
let generation = 0; // a newer search makes the answer of an older one irrelevant

function paramsFromForm() {
  const data = new FormData(form);
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = String(data.get(name) ?? "").trim();
    if (value) params.set(name, value);
  }
  return params;
}

function fillForm(params) {
  for (const name of FIELDS) form.elements[name].value = params.get(name) ?? "";
  const more = FIELDS.some((name) => name !== "q" && params.get(name));
  if (more) $("more").open = true;
}

function go(params, { push = true } = {}) {
  const query = params.toString();
  if (push) history.pushState(null, "", query ? `/search?${query}` : "/search");
  run(params);
}

function narrow(changes) {
  const params = paramsFromForm();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) params.delete(name);
    else params.set(name, value);
  }
  fillForm(params);
  go(params);
}

// ---- results -------------------------------------------------------------------------------------------

function fact(label, value) {
  return el("div", {}, el("dt", {}, label), el("dd", {}, value));
}

function result(hit) {
  const suppliers = names(hit.suppliers);
  return el("li", {},
    el("article", { "aria-labelledby": `r-${hit.ocid}` },
      el("h3", { id: `r-${hit.ocid}` }, el("a", { href: recordHref(hit.ocid) }, hit.title || hit.ocid)),
      el("dl", { class: "facts" },
        fact("Comprador / Buyer", hit.buyer?.name || hit.buyer?.id || "—"),
        fact("Proveedores / Suppliers", suppliers.length ? suppliers.join(", ") : "—"),
        fact("Procedimiento / Method", methodTitle(hit.method)),
        fact("Estado / Status", statusTitle(hit.status)),
        fact("Monto / Amount", money(hit.amount, hit.currency)),
        fact("Fecha / Date", timeEl(hit.date))),
      hit.highlight ? el("p", { class: "snippet" }, highlight(hit.highlight)) : null,
      el("p", { class: "change-ocid muted" }, el("code", {}, hit.ocid))));
}

function facetGroup(title, items, active, onPick) {
  if (!items.length) return null;
  const list = el("ul", {});
  for (const item of items) {
    const pressed = active(item);
    list.append(el("li", {}, item.value === null && item.id === undefined
      ? el("span", { class: "muted" }, `${item.label} (${item.count.toLocaleString("es-MX")})`)
      : el("button", { type: "button", "aria-pressed": pressed ? "true" : "false", onclick: () => onPick(item, pressed) },
        el("span", {}, item.label), el("span", { class: "num" }, item.count.toLocaleString("es-MX")))));
  }
  return [el("h3", {}, title), list];
}

function renderFacets(facets, params) {
  const box = clear($("facet-groups"));
  if (!facets) {
    box.append(el("p", { class: "muted" }, "Los filtros tardaron demasiado. / Facets took too long."));
    return;
  }
  const none = "(sin dato / none)";
  const toggle = (name, value) => (item, pressed) => narrow({ [name]: pressed ? null : value(item), cursor: null });
  const groups = [
    facetGroup("Procedimiento / Method",
      facets.method.map((f) => ({ ...f, label: f.value === null ? none : methodTitle(f.value) })),
      (f) => f.value !== null && params.get("method") === f.value, toggle("method", (f) => f.value)),
    facetGroup("Estado / Status",
      facets.status.map((f) => ({ ...f, label: f.value === null ? none : statusTitle(f.value) })),
      (f) => f.value !== null && params.get("status") === f.value, toggle("status", (f) => f.value)),
    facetGroup("Año / Year",
      facets.year.map((f) => ({ ...f, label: f.value === null ? none : String(f.value) })),
      (f) => f.value !== null && params.get("from") === `${f.value}-01-01` && params.get("to") === `${f.value}-12-31`,
      (f, pressed) => narrow(pressed ? { from: null, to: null, cursor: null }
        : { from: `${f.value}-01-01`, to: `${f.value}-12-31`, cursor: null })),
    facetGroup("Comprador / Buyer",
      facets.buyer.map((f) => ({ ...f, value: f.id, label: f.name || f.id || none })),
      (f) => f.value !== null && params.get("buyer") === f.value, toggle("buyer", (f) => f.value)),
  ].filter(Boolean);
  if (!groups.length) box.append(el("p", { class: "muted" }, "—"));
  for (const group of groups) box.append(...group);
}

function showProblem(message) {
  const box = $("problem");
  box.hidden = !message;
  box.textContent = message ?? "";
}

async function run(params) {
  const mine = ++generation;
  const list = $("results");
  list.setAttribute("aria-busy", "true");
  showProblem(null);
  $("summary").textContent = "Buscando… / Searching…";
  let answer;
  try {
    answer = await getJSON(`/api/search?${params}`);
  } catch {
    answer = { ok: false, status: 0, body: null };
  }
  if (mine !== generation) return;
  list.setAttribute("aria-busy", "false");
  if (!answer.ok) {
    clear(list);
    $("summary").textContent = "";
    $("next").hidden = true;
    const reason = answer.body?.error ?? (answer.status ? `HTTP ${answer.status}` : "sin conexión / offline");
    showProblem(`No se pudo buscar / The search failed: ${reason}`);
    return;
  }
  const body = answer.body;
  clear(list).append(...body.results.map(result));
  const total = body.total;
  const shown = body.results.length;
  $("summary").textContent = shown === 0
    ? "Sin resultados. / No results."
    : total === null || total === undefined
      ? `${shown} resultados en esta página / results on this page`
      : body.total_relation === "gte"
        ? `${total.toLocaleString("es-MX")} o más resultados / ${total.toLocaleString("en")} or more results ` +
          `(facetas de los ${total.toLocaleString("es-MX")} más recientes / facets of the newest ${total.toLocaleString("en")})`
        : `${total.toLocaleString("es-MX")} ${total === 1 ? "resultado / result" : "resultados / results"}`;
  renderFacets(body.facets, params);
  const next = body.links?.next;
  $("next").hidden = !next;
  if (next) $("next").href = `/search${sameOrigin(next).replace(/^[^?]*/, "")}`;
  $("first").hidden = !params.get("cursor");
  const first = new URLSearchParams(params);
  first.delete("cursor");
  $("first").href = first.toString() ? `/search?${first}` : "/search";
  document.title = params.get("q")
    ? `${params.get("q")} — Buscar contrataciones · ocds-live`
    : "Buscar contrataciones · Search contracting — ocds-live";
}

function follow(event) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  const url = new URL(event.currentTarget.href);
  go(url.searchParams);
  $("results-title").scrollIntoView();
}

function main() {
  for (const code of Object.keys(METHODS)) form.elements.method.append(el("option", { value: code }, methodTitle(code)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(paramsFromForm());
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    fillForm(new URLSearchParams());
    go(new URLSearchParams());
  });
  $("next").addEventListener("click", follow);
  $("first").addEventListener("click", follow);
  addEventListener("popstate", () => {
    const params = new URLSearchParams(location.search);
    fillForm(params);
    run(params);
  });
  const params = new URLSearchParams(location.search);
  fillForm(params);
  run(params); // with no parameters: the newest records
}

main();
