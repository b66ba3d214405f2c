// Audit page: the append-only audit trail with filters (actor, action, target, region, period), keyset pages
// (older →) and exports (CSV, JSON lines) of every matching row. Roles compliance and admin.
// Every value from the API reaches the page as text (textContent / text nodes), never as HTML.
import {
  byId, clip, download, el, fail, getJSON, note, query, ready, restrict, setQuery, show, table, time,
} from "./common.js";

const PAGE = 100;
const FILTERS = ["actor", "action", "target", "region", "period"];
const ACTIONS = [ // suggestions for the action filter (what ingest/ writes to audit_log)
  "user.create", "user.update", "user.disable", "user.enable", "token.create", "token.revoke", "policy.draft_upload",
  "policy.activate", "quarantine.release", "quarantine.release_refused", "quarantine.dismiss", "quarantine.expire",
  "quarantine.view", ...["site", "device"].flatMap((k) => ["create", "update", "decommission"].map((a) => `registry.${k}.${a}`)),
];
const state = { before: null, pages: [] }; // pages: the before_id of each page shown so far (back to the newest)

function filterValues() {
  const form = byId("audit-filters");
  return Object.fromEntries(FILTERS.map((f) => [f, form.elements[f].value.trim()]));
}

function apiParams(filters) {
  const params = new URLSearchParams();
  for (const [key, val] of Object.entries(filters)) if (val && key !== "period") params.set(key, val);
  if (filters.period) params.set("since", new Date(Date.now() - Number(filters.period) * 1000).toISOString());
  return params;
}

async function load() {
  const filters = filterValues();
  setQuery(filters);
  const params = apiParams(filters);
  params.set("limit", PAGE);
  if (state.before) params.set("before_id", state.before);
  const list = byId("audit-list");
  list.setAttribute("aria-busy", "true");
  try {
    render(await getJSON(`/audit?${params}`), filters);
  } catch (err) {
    show("audit-list", fail(err));
  } finally {
    list.removeAttribute("aria-busy");
  }
}

function render(page, filters) {
  const list = byId("audit-list");
  list.dataset.filters = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  byId("audit-older-btn").disabled = page.next_before_id === null;
  byId("audit-first-btn").disabled = !state.before;
  byId("audit-older-btn").dataset.next = page.next_before_id ?? "";
  byId("audit-count").textContent = `${page.items.length} row(s) on this page`;
  if (!page.items.length) return show("audit-list", note("No audit row matches these filters."));
  const rows = page.items.map((r) => el(
    "tr",
    { "data-id": r.id, "data-action": r.action },
    el("td", {}, time(r.at)),
    el("td", {}, r.actor),
    el("td", { class: "mono" }, r.action),
    el("td", {}, clip(r.target, "mono")),
    el("td", {}, r.regions.length ? r.regions.join(", ") : el("span", { class: "muted" }, "global")),
    el("td", { class: "details" }, clip(JSON.stringify(r.details), "mono wide")),
  ));
  return show("audit-list", table(["at", "actor", "action", "target", "regions", "details"], rows, { class: "audit" }));
}

async function exportRows(format) {
  const status = byId("audit-export-status");
  const params = apiParams(filterValues());
  params.set("format", format);
  status.textContent = "exporting…";
  try {
    status.textContent = `saved ${await download(`/audit/export?${params}`)}`;
    status.dataset.exported = format;
  } catch (err) {
    status.textContent = `export failed: ${err.detail || err.message}`;
  }
}

async function start() {
  const me = await ready;
  if (!me) return;
  if (!restrict("audit", ["compliance", "admin"], "the audit trail")) {
    byId("audit-count").textContent = "not available to your roles";
    return;
  }
  const form = byId("audit-filters");
  byId("audit-actions").append(...ACTIONS.map((a) => el("option", { value: a })));
  try {
    const regions = await getJSON("/regions");
    form.elements.region.append(...regions.map((r) => el("option", { value: r.name }, `${r.name} (${r.country})`)));
  } catch {
    // the filter stays "any"
  }
  for (const f of FILTERS) if (query(f)) form.elements[f].value = query(f);
  const reload = () => {
    state.before = null;
    state.pages = [];
    load();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    reload();
  });
  form.addEventListener("change", (event) => event.target.tagName === "SELECT" && reload());
  form.addEventListener("reset", () => setTimeout(reload));
  byId("audit-older-btn").addEventListener("click", (event) => {
    state.pages.push(state.before);
    state.before = Number(event.target.dataset.next) || null;
    load();
  });
  byId("audit-first-btn").addEventListener("click", reload);
  byId("audit-export-csv").addEventListener("click", () => exportRows("csv"));
  byId("audit-export-jsonl").addEventListener("click", () => exportRows("jsonl"));
  byId("refresh-btn").addEventListener("click", load);
  await load();
  document.body.dataset.loaded = "1";
}

start();
