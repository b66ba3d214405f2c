// Compliance page: the policy in force and its activation history, measured transfer volumes, the decision log
// with filters (time included), its total and exports, quarantine review (inspect, release or dismiss as the
// signed-in user) and what-if of a draft revision. Only what the user's roles may read is asked for; the rest is
// named once.
// Every value from the API reaches the page as text (textContent / text nodes), never as HTML.
import {
  CATEGORIES, HttpError, OUTCOMES, backlog, byId, clip, clock, download, el, fail, getJSON, guard, hasRole, note, num,
  pageUrl, pill, postJSON, query, ready, restrict, revision, safeClass, setQuery, shortRev, show, stamp, table, time,
} from "./common.js";

const PAGE = 50;
const FILTERS = ["origin", "region", "category", "outcome", "device_id", "period", "since", "until"];
const Q_STATES = ["open", "held", "discarded", "released", "dismissed", "expired", ""];
const Q_PILLS = ["held", "discarded", "released", "dismissed", "expired"];
const state = {
  offset: Number(query("offset")) || 0,
  qState: Q_STATES.includes(query("quarantine")) ? query("quarantine") : "open",
  inspected: null, // quarantine id shown in the inspector
  loads: 0, // decision list requests sent (only the newest renders)
};
const enc = encodeURIComponent;
const options = (values, label = (v) => v) => values.map((v) => el("option", { value: v }, label(v)));
const dl = (pairs) => el("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));

// --- policy --------------------------------------------------------------------------------------
function renderPolicy(status) {
  const chip = byId("policy-chip");
  chip.textContent = `policy: ${shortRev(status.revision)}`;
  chip.title = status.revision;
  const cache = status.cache;
  show(
    "policy-status",
    dl([
      ["revision in force", el("span", { class: "mono", id: "policy-revision" }, status.revision)],
      ["engine", `${status.engine} (replica ${status.replica})`],
      ["activated", [`${status.source} by ${status.activated_by}, `, time(status.loaded_at)]],
      status.policy_dir && ["policy directory", [
        el("span", { class: "mono" }, status.policy_dir),
        status.watch_s ? ` (checked every ${status.watch_s} s)` : " (not watched)",
      ]],
      status.file_revision && status.file_revision !== status.revision && ["directory revision", revision(status.file_revision)],
      cache && ["decision cache", `${num(cache.hits)} hits, ${num(cache.misses)} misses, ${num(cache.size)} of ${num(cache.maxsize)} entries`],
      status.last_refused && ["last refused", el("span", { class: "error" }, `${shortRev(status.last_refused.revision)}: ${status.last_refused.error}`)],
      status.unrecorded_activations > 0 && ["not yet recorded", `${num(status.unrecorded_activations)} activation(s): control store down`],
    ]),
  );
}

function renderActivations(page) {
  if (!page.items.length) return show("activations", note("No activation recorded yet."));
  const rows = page.items.map((a) =>
    el(
      "tr",
      { "data-outcome": a.outcome },
      el("td", {}, time(a.at)),
      el("td", {}, el("span", { class: `pill ${a.outcome === "accepted" ? "stored" : "denied"}` }, a.outcome)),
      el("td", {}, revision(a.revision)),
      el("td", {}, a.previous_revision ? revision(a.previous_revision) : "–"),
      el("td", {}, a.source),
      el("td", {}, a.activated_by),
      el("td", { class: "muted" }, [a.engine, a.replica].filter(Boolean).join(" · ") || "–"),
      el("td", { class: "num" }, a.tests_passed === null ? "–"
        : `${num(a.tests_passed)} passed${a.tests_failed ? `, ${num(a.tests_failed)} failed` : ""}`),
      el("td", { class: "detail" }, a.error || ""),
    ),
  );
  const headers = ["at", "outcome", "revision", "previous", "source", "by", "engine · replica", { label: "Rego tests", num: true }, "error"];
  return show("activations", table(headers, rows));
}

// --- measured transfer volumes ------------------------------------------------------------------
const VOLUME_COUNTERS = [
  ["individuals_ytd", "people, this year"],
  ["sensitive_individuals_ytd", "sensitive, this year"],
  ["individuals_12m", "people, 12 months"],
  ["sensitive_individuals_12m", "sensitive, 12 months"],
];

function renderVolumes(body) {
  if (!body.measuring) return show("volume-list", note("This process measures no volumes (INGEST_MEASURE_VOLUMES is off)."));
  if (!body.routes.length) return show("volume-list", note("No cross-border route in the registry."));
  const rows = body.routes.map((r) =>
    el(
      "tr",
      { "data-route": `${r.site_id}/${r.region}`, "data-warnings": String(r.warnings.length) },
      el("td", {}, r.site_id),
      el("td", {}, `${r.region} (${r.origin} → ${r.destination})`),
      ...VOLUME_COUNTERS.map(([k]) =>
        el("td", { class: "num", title: `measured ${num(r.measured[k])}, declared ${num(r.declared[k] || 0)}` },
          num(r.effective[k]))),
      el("td", { class: "detail" }, r.warnings.length
        ? r.warnings.map((w) => el("div", { class: w.status === "reached" ? "error" : "warn" },
          `${w.status}: ${w.counter} ${num(w.value)} of ${num(w.limit)} (${Math.round(w.ratio * 100)} %), ${w.law}: ${w.becomes}`))
        : "–"),
    ),
  );
  const headers = ["site", "region", ...VOLUME_COUNTERS.map(([, label]) => ({ label, num: true })), "thresholds"];
  const sync = body.sync_error ? el("p", { class: "error" }, `volume sync: ${body.sync_error}`) : null;
  return show("volume-list", [sync, table(headers, rows)].filter(Boolean));
}

// --- decisions -----------------------------------------------------------------------------------
function filterValues() {
  const form = byId("decision-filters");
  const values = Object.fromEntries(FILTERS.map((f) => [f, form.elements[f].value.trim()]));
  if (values.period !== "custom") {
    values.since = "";
    values.until = "";
  }
  for (const label of form.querySelectorAll(".custom-period")) label.hidden = values.period !== "custom";
  return values;
}

/** The API's query of the filters: a period becomes since (now - period); from/to are local times. */
function apiParams(filters) {
  const params = new URLSearchParams();
  for (const [key, val] of Object.entries(filters)) {
    if (!val || key === "period" || key === "since" || key === "until") continue;
    params.set(key, val);
  }
  if (filters.period && filters.period !== "custom") {
    params.set("since", new Date(Date.now() - Number(filters.period) * 1000).toISOString());
  }
  for (const key of ["since", "until"]) if (filters[key]) params.set(key, new Date(filters[key]).toISOString());
  return params;
}

async function exportDecisions(format) {
  const status = byId("export-status");
  const params = apiParams(filterValues());
  params.set("format", format);
  status.textContent = "exporting…";
  try {
    const name = await download(`/decisions/export?${params}`);
    status.textContent = `saved ${name}`;
    status.dataset.exported = format;
  } catch (err) {
    status.textContent = `export failed: ${err.detail || err.message}`;
  }
}

async function loadDecisions() {
  const filters = filterValues();
  setQuery({ ...filters, offset: state.offset || null });
  const params = apiParams(filters);
  params.set("limit", PAGE);
  params.set("offset", state.offset);
  const list = byId("decision-list");
  const mine = ++state.loads; // only the newest request renders (filters can change faster than answers)
  list.setAttribute("aria-busy", "true");
  try {
    const page = await getJSON(`/decisions?${params}`);
    if (mine === state.loads) renderDecisions(page, filters);
  } catch (err) {
    if (mine === state.loads) show("decision-list", fail(err));
  } finally {
    if (mine === state.loads) list.removeAttribute("aria-busy");
  }
}

function renderDecisions(page, filters) {
  const active = Object.entries(filters).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(", ");
  const count = byId("decisions-count");
  count.textContent = page.items.length
    ? `${num(page.offset + 1)}–${num(page.offset + page.items.length)} of ${num(page.total)}${active ? ` · ${active}` : ""}`
    : `0 of ${num(page.total)}`;
  count.dataset.total = String(page.total);
  byId("newer-btn").disabled = page.offset === 0;
  byId("older-btn").disabled = page.offset + page.items.length >= page.total;
  const list = byId("decision-list");
  list.dataset.filters = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  if (!page.items.length) return show("decision-list", note(active ? "No decision matches these filters." : "No decisions yet."));
  const rows = page.items.map((d) =>
    el(
      "tr",
      {
        "data-id": d.decision_id, "data-origin": d.origin_country, "data-region": d.region,
        "data-category": d.category, "data-outcome": d.outcome,
      },
      el("td", {}, time(d.decided_at, clock(d.decided_at))),
      el("td", {}, el("a", { href: pageUrl("device", { id: d.device_id }) }, d.device_id), el("span", { class: "muted" }, ` #${d.seq}`)),
      el("td", {}, el("span", { class: "tag" }, d.category)),
      el("td", {}, `${d.origin_country} → ${d.region} (${d.destination_country})`),
      el("td", {}, pill(d.outcome)),
      el(
        "td",
        { class: "why" },
        el("ul", { class: "reasons" }, (d.reasons || []).map((r) => el("li", {}, r))),
        d.requires.length ? el("div", { class: "muted" }, `requires one of: ${d.requires.join(", ")}`) : null,
        Object.keys(d.transforms).length
          ? el("div", { class: "muted" }, `transforms: ${Object.entries(d.transforms).map(([k, v]) => `${k}: ${v}`).join(", ")}`)
          : null,
        d.localization && d.localization !== "none" ? el("div", { class: "muted" }, `localization: ${d.localization}`) : null,
      ),
      el("td", { class: "num" }, num(d.readings)),
      el("td", {}, revision(d.policy_revision)),
    ),
  );
  const headers = ["time", "device", "category", "origin → region", "outcome", "reasons",
    { label: "readings in batch", num: true }, "policy"];
  return show("decision-list", table(headers, rows, { class: "decisions" }));
}

// --- quarantine ----------------------------------------------------------------------------------
function renderQueues(queues) {
  const q = queues.quarantine || {};
  const chip = byId("quarantine-chip");
  chip.textContent = `quarantine: ${num(q.open || 0)} open (${num(q.held || 0)} held · ${num(q.discarded || 0)} discarded)`;
  chip.className = `chip ${q.open ? "warn" : ""}`;
  const gaps = byId("gaps-chip");
  gaps.textContent = `open gaps: ${num(queues.openGaps)}`;
  gaps.className = `chip ${queues.openGaps ? "warn" : ""}`;
  const all = Q_PILLS.reduce((sum, s) => sum + (q[s] || 0), 0);
  show("quarantine-states", ...Q_STATES.map((s) =>
    el("button", { type: "button", class: "btn", "aria-pressed": String(s === state.qState), "data-state": s || "all", onclick: () => {
      state.qState = s;
      setQuery({ quarantine: s === "open" ? null : s || "all" });
      refreshQuarantine();
    } }, `${s || "all"} ${num(s ? q[s] || 0 : all)}`)));
}

function renderQuarantine(page) {
  if (!page.items.length) return show("quarantine-list", note(state.qState ? `Nothing ${state.qState}.` : "Nothing quarantined."));
  const rows = page.items.map((item) =>
    el(
      "tr",
      { "data-id": item.quarantine_id, "data-state": item.state, class: item.quarantine_id === state.inspected ? "selected" : null },
      el("td", {}, time(item.received_at, clock(item.received_at))),
      el("td", {}, item.device_id
        ? [el("a", { href: pageUrl("device", { id: item.device_id }) }, item.device_id),
          item.seq === null ? null : el("span", { class: "muted" }, ` #${item.seq}`)]
        : clip(item.topic, "mono muted")),
      el("td", { class: "reason" }, el("span", { class: "mono" }, item.code), el("div", { class: "detail clamp", title: item.detail }, item.detail)),
      el("td", {}, item.origin_country || "–", item.category ? el("div", { class: "detail" }, item.category.replaceAll("/", " / ")) : null),
      el("td", {}, item.payload_region || el("span", { class: "muted" }, "nowhere"),
        el("div", { class: "detail" }, `${num(item.payload_bytes)} bytes`)),
      el("td", {}, el("span", { class: `pill ${safeClass(item.state, Q_PILLS, "unknown")}` }, item.state)),
      el("td", {}, el("button", { type: "button", class: "btn", "data-action": "inspect", onclick: () => inspect(item.quarantine_id) }, "Inspect")),
    ),
  );
  return show("quarantine-list", table(["received", "device", "reason", "origin · categories", "kept in", "state", ""], rows));
}

async function refreshQuarantine() {
  if (!hasRole("compliance")) return;
  const filter = state.qState ? `&state=${state.qState}` : "";
  const [queues, page] = await Promise.allSettled([backlog(), getJSON(`/quarantine?limit=100${filter}`)]);
  guard(queues, null, renderQueues);
  guard(page, "quarantine-list", renderQuarantine);
}

async function inspect(id) {
  state.inspected = id;
  for (const row of byId("quarantine-list").querySelectorAll("tr[data-id]")) row.classList.toggle("selected", row.dataset.id === id);
  let item;
  try {
    item = await getJSON(`/quarantine/${enc(id)}`);
  } catch (err) {
    return show("quarantine-detail", fail(err));
  }
  const missing = {
    held: "Payload not found in its region store.",
    released: "Released: the payload was routed and removed from quarantine.",
    discarded: "Payload discarded: no region may lawfully hold it.",
    dismissed: "Dismissed: the payload was deleted.",
    expired: "Expired: the payload was deleted after the retention period.",
  };
  const payload = item.payload !== null && item.payload !== undefined
    ? el("pre", { class: "payload", id: "quarantine-payload" }, item.payload)
    : note(missing[item.state] || "No payload.");
  const result = el("div", { id: "release-result", role: "status" });
  let form = null;
  if (item.state === "held" || item.state === "discarded") {
    // the signed-in user (the API token's owner) is recorded with the release or dismissal and in the audit trail
    const reason = el("input", { name: "reason", id: "dismiss-reason", placeholder: "why (recorded)", size: 28, minlength: 3 });
    form = el("div", { class: "actions" },
      el("p", { class: item.releasable ? "muted" : "detail", id: "release-note" }, item.release_note),
      item.releasable ? el("form", { class: "filters", id: "release-form", onsubmit: (event) => {
        event.preventDefault();
        release(item.quarantine_id, result, event.submitter || event.target.querySelector("button"));
      } }, el("button", { type: "submit", class: "btn primary", id: "release-btn" }, "Release")) : null,
      el("form", { class: "filters", id: "dismiss-form", onsubmit: (event) => {
        event.preventDefault();
        dismiss(item.quarantine_id, reason.value.trim(), result, event.submitter || event.target.querySelector("button"));
      } }, reason, el("button", { type: "submit", class: "btn", id: "dismiss-btn" }, "Dismiss")));
  }
  show(
    "quarantine-detail",
    el("h3", {}, `${item.code}: ${item.device_id || item.topic}`),
    dl([
      ["id", el("span", { class: "mono" }, item.quarantine_id)],
      ["received", time(item.received_at)],
      ["topic", el("span", { class: "mono" }, item.topic)],
      ["reason", item.detail],
      ["origin · category", `${item.origin_country || "–"} · ${item.category || "–"}`],
      ["payload", `${num(item.payload_bytes)} bytes, ${item.payload_region ? `held in ${item.payload_region}` : "not kept"}`],
      ["state", el("span", { class: `pill ${safeClass(item.state, Q_PILLS, "unknown")}` }, item.state)],
      item.released_by && ["released", [`by ${item.released_by}, `, time(item.released_at)]],
      item.closed_by && item.state !== "released" && ["closed", [`${item.state} by ${item.closed_by}, `, time(item.closed_at),
        item.close_reason ? `: ${item.close_reason}` : ""]],
      item.release_result && ["release result", clip(JSON.stringify(item.release_result), "mono")],
    ]),
    payload,
    form,
    result,
  );
  return undefined;
}

async function release(id, result, button) {
  button.disabled = true;
  result.className = "result";
  result.textContent = "releasing…";
  try {
    const body = await postJSON(`/quarantine/${enc(id)}/release`, {});
    const rows = Object.entries(body.rows).map(([region, n]) => `${region}: ${num(n)}`).join(", ") || "none";
    result.className = "result ok";
    result.dataset.status = "200";
    result.textContent = `Released by ${body.released_by} under policy ${shortRev(body.policy_revision)}: `
      + `rows stored ${rows}; ${num(body.decisions.length)} decision(s) recorded.`;
    await refreshQuarantine();
  } catch (err) {
    result.className = "result error";
    result.dataset.status = err instanceof HttpError ? String(err.status) : "network";
    result.textContent = err instanceof HttpError ? `Refused (HTTP ${err.status}): ${err.detail}` : `Failed: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

async function dismiss(id, reason, result, button) {
  if (reason.length < 3) {
    result.className = "result error";
    result.textContent = "Say why (at least 3 characters): the reason is recorded with the item and in the audit trail.";
    return;
  }
  button.disabled = true;
  try {
    const body = await postJSON(`/quarantine/${enc(id)}/dismiss`, { reason });
    await refreshQuarantine();
    await inspect(id);
    const after = byId("release-result");
    after.className = "result ok";
    after.dataset.status = "200";
    after.textContent = `Dismissed by ${body.closed_by}: ${body.close_reason}${body.payload_deleted ? " (payload deleted)" : ""}.`;
  } catch (err) {
    result.className = "result error";
    result.dataset.status = err instanceof HttpError ? String(err.status) : "network";
    result.textContent = err instanceof HttpError ? `Refused (HTTP ${err.status}): ${err.detail}` : `Failed: ${err.message}`;
    button.disabled = false;
  }
}

// --- what-if -------------------------------------------------------------------------------------
function renderDrafts(drafts) {
  const select = byId("draft-select");
  if (!drafts.length) {
    select.replaceChildren(el("option", { value: "" }, "no drafts uploaded (POST /api/v1/policy/drafts)"));
    byId("whatif-btn").disabled = true;
    return;
  }
  const seen = new Set();
  select.replaceChildren(...drafts.filter((d) => !seen.has(d.revision) && seen.add(d.revision)).map((d) =>
    el("option", { value: d.revision, title: d.revision },
      `${shortRev(d.revision)} · ${d.uploaded_by}, ${stamp(d.uploaded_at)} · ${num(d.tests)} test files`)));
  const wanted = query("draft");
  if (wanted && seen.has(wanted)) select.value = wanted;
}

async function runWhatif(event) {
  event.preventDefault();
  const form = event.target;
  const body = {
    revision: form.elements.revision.value,
    window_s: Number(form.elements.window_s.value),
    examples: Number(form.elements.examples.value) || 0,
  };
  const button = byId("whatif-btn");
  const progress = byId("whatif-progress");
  const started = performance.now();
  const tick = setInterval(() => (progress.textContent = `replaying… ${((performance.now() - started) / 1000).toFixed(0)} s`), 500);
  button.disabled = true;
  progress.textContent = "replaying…";
  show("whatif-result");
  try {
    const report = await postJSON("/policy/whatif", body);
    renderWhatif(report);
    progress.textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (err) {
    progress.textContent = "";
    const text = err instanceof HttpError ? `What-if refused (HTTP ${err.status}): ${err.detail}` : `What-if failed: ${err.message}`;
    show("whatif-result", el("p", { class: "result error", "data-status": err.status || "network" }, text));
  } finally {
    clearInterval(tick);
    button.disabled = false;
  }
}

function regionCounts(title, rows) {
  if (!rows.length) return null;
  return el("div", {}, el("h3", {}, title), table(["region", { label: "decisions", num: true }, { label: "readings", num: true }],
    rows.map((r) => el("tr", {}, el("td", {}, r.region),
      el("td", { class: "num" }, num(r.decisions)), el("td", { class: "num" }, num(r.readings))))));
}

function renderWhatif(r) {
  const card = (key, label, value, tone, sub) => el("div", { class: `card${tone ? ` ${tone}` : ""}`, "data-kpi": key },
    el("div", { class: "label" }, label), el("div", { class: "value" }, value), sub ? el("div", { class: "muted small" }, sub) : null);
  const transitions = [...r.transitions].sort((a, b) => Number(b.changed) - Number(a.changed));
  const outcomeClass = (o) => safeClass(o, OUTCOMES, "unknown");
  const rows = transitions.map((t) =>
    el(
      "tr",
      { class: t.changed ? "changed" : "unchanged", "data-changed": String(t.changed), "data-key": `${t.origin}|${t.region}|${t.category}` },
      el("td", {}, t.origin),
      el("td", {}, `${t.region} (${t.destination})`),
      el("td", {}, el("span", { class: "tag" }, t.category)),
      el("td", {}, el("span", { class: `pill ${outcomeClass(t.old)}` }, t.old), " → ", el("span", { class: `pill ${outcomeClass(t.new)}` }, t.new)),
      el("td", { class: "num" }, num(t.decisions)),
      el("td", { class: "num" }, num(t.readings)),
    ),
  );
  const examples = r.examples.map((x) =>
    el(
      "div",
      { class: "example" },
      el("h4", {}, el("a", { href: pageUrl("device", { id: x.device_id }) }, x.device_id),
        ` #${x.seq}: ${x.origin} → ${x.region} (${x.destination}), ${x.category}: `,
        el("span", { class: `pill ${outcomeClass(x.old)}` }, x.old), " → ", el("span", { class: `pill ${outcomeClass(x.new)}` }, x.new)),
      el("div", { class: "two" },
        el("div", {}, el("div", { class: "muted" }, "recorded reasons"), el("ul", { class: "reasons" }, x.old_reasons.map((t) => el("li", {}, t)))),
        el("div", {}, el("div", { class: "muted" }, "draft reasons"), el("ul", { class: "reasons" }, x.new_reasons.map((t) => el("li", {}, t))),
          x.new_requires.length ? el("div", { class: "muted" }, `requires one of: ${x.new_requires.join(", ")}`) : null)),
    ),
  );
  show(
    "whatif-result",
    el("p", { class: "legend" },
      `Draft ${shortRev(r.draft_revision)} against decisions of ${stamp(r.since)} – ${stamp(r.until)}, recorded by `,
      Object.entries(r.recorded_revisions).map(([rev, n]) => `${shortRev(rev)} (${num(n)})`).join(", ") || "no revision",
      `; ${r.seconds.toFixed(2)} s.`),
    el("div", { class: "cards" },
      card("decisions", "decisions replayed", num(r.decisions)),
      card("messages", "message-categories", num(r.messages)),
      card("changed", "outcome changed", num(r.changed_decisions), r.changed_decisions ? "warn" : "good"),
      card("reasons-only", "only reasons changed", num(r.reasons_only_changed_decisions)),
      card("newly-quarantined", "newly quarantined (no region left)", num(r.newly_quarantined.messages), r.newly_quarantined.messages ? "bad" : null,
        `message-categories · ${num(r.newly_quarantined.readings)} readings`),
      card("newly-placed", "newly placed (were quarantined)", num(r.newly_placed.messages), null,
        `message-categories · ${num(r.newly_placed.readings)} readings`),
    ),
    el("h3", {}, "Changes per origin → region → category"),
    el("div", { class: "scroll" }, table(
      ["origin", "region (destination)", "category", "recorded → draft", { label: "decisions", num: true }, { label: "readings", num: true }],
      rows,
      { class: "transitions", id: "whatif-transitions" },
    )),
    el("div", { class: "two" }, regionCounts("Rows no longer stored", r.newly_denied), regionCounts("Rows newly stored", r.newly_allowed)),
    examples.length ? [el("h3", {}, "Examples"), examples] : null,
    r.errors.length ? [el("h3", { class: "error" }, "Errors"), el("pre", { class: "payload" }, JSON.stringify(r.errors, null, 2))] : null,
  );
}

// --- page ----------------------------------------------------------------------------------------
async function refreshAll() {
  const compliance = hasRole("compliance"); // activations and drafts are compliance data (GET /policy: anyone)
  const volumesToo = hasRole("engineer", "compliance");
  const [policy, activations, drafts, volumes] = await Promise.allSettled([
    getJSON("/policy"),
    compliance ? getJSON("/policy/activations?limit=20") : null,
    compliance ? getJSON("/policy/drafts?limit=100") : null,
    volumesToo ? getJSON("/volumes") : null,
  ]);
  guard(policy, "policy-status", renderPolicy);
  if (compliance) {
    guard(activations, "activations", renderActivations);
    guard(drafts, null, renderDrafts);
  }
  if (volumesToo) guard(volumes, "volume-list", renderVolumes);
  await Promise.all([hasRole("engineer", "compliance") ? loadDecisions() : null, refreshQuarantine(),
    state.inspected && compliance ? inspect(state.inspected) : null]);
  document.body.dataset.loaded = "1";
}

async function start() {
  const me = await ready;
  if (!me) return; // not signed in: the sign-in form, nothing asked
  if (!restrict("activations-block", ["compliance"], "the activation history")) byId("activations").hidden = true;
  restrict("quarantine", ["compliance"], "quarantine review");
  if (!restrict("whatif", ["compliance"], "what-if")) byId("quarantine-chip").hidden = true;
  restrict("decisions", ["engineer", "compliance"], "the decision log");
  if (!hasRole("operator", "engineer", "compliance")) byId("gaps-chip").hidden = true;
  const form = byId("decision-filters");
  const [sites, regions, devices] = await Promise.allSettled([getJSON("/sites"), getJSON("/regions"), getJSON("/devices?limit=1000")]);
  if (sites.status === "fulfilled") form.elements.origin.append(...options([...new Set(sites.value.map((s) => s.country))].sort()));
  if (regions.status === "fulfilled") {
    const country = Object.fromEntries(regions.value.map((r) => [r.name, r.country]));
    form.elements.region.append(...options(Object.keys(country), (n) => `${n} (${country[n]})`));
  }
  if (devices.status === "fulfilled") byId("device-list").append(...options(devices.value.items.map((d) => d.device_id)));
  form.elements.category.append(...options(CATEGORIES));
  form.elements.outcome.append(...options(OUTCOMES));
  for (const f of FILTERS) if (query(f)) form.elements[f].value = query(f);
  const reload = () => {
    state.offset = 0;
    loadDecisions();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    reload();
  });
  form.addEventListener("change", (event) => (event.target.tagName === "SELECT" || event.target.type === "datetime-local") && reload());
  form.addEventListener("reset", () => setTimeout(reload));
  byId("export-csv").addEventListener("click", () => exportDecisions("csv"));
  byId("export-jsonl").addEventListener("click", () => exportDecisions("jsonl"));
  byId("newer-btn").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    loadDecisions();
  });
  byId("older-btn").addEventListener("click", () => {
    state.offset += PAGE;
    loadDecisions();
  });
  byId("whatif-form").addEventListener("submit", runWhatif);
  byId("refresh-btn").addEventListener("click", refreshAll);
  await refreshAll();
}

start();
