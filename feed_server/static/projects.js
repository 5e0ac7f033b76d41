// The list of infrastructure projects from /api/projects?view=overview, searched by name, buyer or public
// authority (q) and status, with seek paging (links.next).
import { clear, el, getJSON, money, sameOrigin } from "./common.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

export function projectHref(id) {
  return `/projects/${encodeURIComponent(id)}`;
}

function sums(list) {
  const parts = (Array.isArray(list) ? list : []).map((item) => money(item.amount, item.currency));
  return parts.length ? parts.join(" + ") : "—";
}

function card(project) {
  const authority = project.public_authority?.name || (project.buyers ?? [])[0] || "—";
  const fact = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  return el("article", { class: "project" },
    el("h3", {}, el("a", { href: projectHref(project.id) }, project.title || project.id)),
    el("p", { class: "muted" }, el("code", {}, project.id)),
    el("dl", { class: "change-meta" },
      fact("Autoridad / Authority", authority),
      fact("Estado / Status", project.status || "—"),
      fact("Procesos / Processes", String(project.processes ?? 0)),
      fact("Presupuesto / Budget", project.budget ? money(project.budget.amount, project.budget.currency) : "—"),
      fact("Contratado / Contracted", sums(project.contracted)),
      fact("Pagado / Paid", sums(project.paid))));
}

async function main() {
  const form = $("search");
  form.q.value = params.get("q") ?? "";
  form.status.value = params.get("status") ?? "";
  const query = new URLSearchParams({ view: "overview", limit: "20" });
  for (const key of ["q", "status", "cursor"]) if (params.get(key)) query.set(key, params.get(key));
  const answer = await getJSON(`/api/projects?${query}`).catch(() => ({ ok: false, status: 0, body: null }));
  const box = $("results");
  box.setAttribute("aria-busy", "false");
  if (!answer.ok) {
    $("problem").hidden = false;
    $("problem").textContent = `No se pudo cargar / Could not load: ${answer.body?.error ?? (answer.status || "sin conexión / offline")}`;
    return;
  }
  const projects = answer.body.projects ?? [];
  clear(box).append(...(projects.length ? projects.map(card)
    : [el("p", { class: "muted" }, "Ningún proyecto / No projects")]));
  const next = answer.body.links?.next;
  if (next) {
    const cursor = new URL(sameOrigin(next), location.href).searchParams.get("cursor");
    const link = new URLSearchParams(params);
    link.set("cursor", cursor);
    $("next").href = `/projects?${link}`;
    $("next").hidden = false;
  }
}

main();
