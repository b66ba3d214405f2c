// Shared helpers of the dashboard pages (Live, Device, Compliance). Plain ES module, no dependencies.
// Every value from the API reaches the page as text (textContent / text nodes), never as HTML.

// Paths are resolved against this module's own URL (…/dashboard/static/common.js), so the pages also
// work behind a path prefix.
export const API = new URL("../../api/v1", import.meta.url).pathname;
export const OUTCOMES = ["stored", "transformed", "denied"];
export const CATEGORIES = ["machine", "personal", "sensitive_personal", "important", "core"];

const fmtInt = new Intl.NumberFormat();
const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const fmt2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
export const num = (n) => (typeof n === "number" ? fmtInt.format(n) : "–");
export function perSecond(n) {
  if (n === undefined || n === null) return "–";
  if (n > 0 && n < 0.1) return String(Number(n.toPrecision(2)));
  return n < 10 ? fmt2.format(n) : fmt1.format(n);
}
export function value(v) {
  if (typeof v !== "number") return v === null || v === undefined ? "–" : String(v);
  const abs = Math.abs(v);
  return abs !== 0 && (abs < 0.01 || abs >= 1e6) ? v.toPrecision(4) : fmt2.format(v);
}

/** Link to another dashboard page: page "" is Live, else "device" or "compliance". */
export function pageUrl(page, params = {}) {
  const url = new URL(page ? `../${page}` : "../../dashboard", import.meta.url);
  for (const [key, val] of Object.entries(params)) if (val !== undefined && val !== null) url.searchParams.set(key, val);
  return url.pathname + url.search;
}

// --- DOM (text only) ---------------------------------------------------------------------------
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, val] of Object.entries(props || {})) {
    if (val === undefined || val === null || val === false) continue;
    if (key === "class") node.className = val;
    else if (key === "title") node.title = String(val);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), val);
    else node.setAttribute(key, val === true ? "" : String(val));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
export const byId = (id) => document.getElementById(id);
/** Replace the children of #id with nodes (nested arrays flattened, null/false skipped). */
export const show = (id, ...nodes) =>
  byId(id).replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
export const note = (text) => el("p", { class: "empty-note" }, text);
/** A failure as the page shows it: a refusal (401/403) is explained once, calmly; anything else is an error. */
export const fail = (err) => (err instanceof HttpError && (err.status === 403 || err.status === 401)
  ? el("p", { class: "denied", "data-status": err.status }, `Not available to your user: ${err.detail}`)
  : el("p", { class: "error" }, `unavailable: ${err.message || err}`));
/** Long text (pseudonyms, ids, JSON) cut to the cell's width, the whole of it in the tooltip. */
export const clip = (text, cls = "") => el("span", { class: `clip ${cls}`.trim(), title: String(text ?? "") }, text ?? "–");
export const safeClass = (val, allowed, fallback) => (allowed.includes(val) ? val : fallback);
export const pill = (outcome) => el("span", { class: `pill ${safeClass(outcome, OUTCOMES, "unknown")}` }, outcome);
export const shortRev = (rev) => (rev ? String(rev).replace(/^sha256:/, "").slice(0, 12) : "none");
export const revision = (rev) => el("span", { class: "mono", title: rev || "" }, shortRev(rev));

/** headers: strings or {label, num}; rows: <tr> nodes. */
export function table(headers, rows, props = {}) {
  const head = el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label ?? h)));
  return el("table", props, el("thead", {}, head), el("tbody", {}, rows));
}

export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return String(iso);
  if (seconds < 2) return "just now";
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}
export const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");
export const stamp = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
export const time = (iso, text) => el("time", { datetime: iso || null, title: iso || null }, text ?? stamp(iso));

// --- sign-in: an API token kept in sessionStorage (this tab only), sent as Authorization: Bearer ---
const TOKEN_KEY = "dashboard.token";

// A link may carry the token in its fragment (#token=rtk_...; fragments never reach a server or a log): keep it
// for this tab and take it out of the address bar and the history at once.
(function tokenFromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get("token");
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  params.delete("token");
  const rest = params.toString();
  window.history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
})();

export const getToken = () => sessionStorage.getItem(TOKEN_KEY);

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  window.location.reload();
}

// --- session: who is signed in, and what the pages may ask for --------------------------------------
// Pages wait for `ready` (GET /me) before polling anything: without a token they poll nothing and show the
// sign-in form; a 401 stops every poll (session.stopped) until the user signs in again; a 403 is remembered
// per request (path and query) and never sent again from this page (see request()).
export const session = { me: null, stopped: false };
const refused = new Map(); // path?query -> HttpError (403)

export const hasRole = (...roles) => !!session.me && roles.some((r) => session.me.roles.includes(r));

/** Hide a panel the user's roles cannot read and name it, once, in the page's access note. */
export function restrict(element, roles, what) {
  if (hasRole(...roles)) return true;
  const node = typeof element === "string" ? byId(element) : element;
  if (node) node.hidden = true;
  accessNote().dataset.hidden = [...(accessNote().dataset.hidden ? accessNote().dataset.hidden.split("|") : []),
    `${what} (role ${roles.join(" or ")})`].join("|");
  renderAccessNote();
  return false;
}

function accessNote() {
  let box = byId("access-note");
  if (!box) {
    box = el("p", { class: "access-note", id: "access-note", role: "note" });
    const main = document.querySelector("main");
    main.parentElement.insertBefore(box, main);
  }
  return box;
}

function renderAccessNote() {
  const box = accessNote();
  const me = session.me;
  const hidden = box.dataset.hidden ? box.dataset.hidden.split("|") : [];
  box.textContent = `Signed in as ${me.user} (${me.roles.join(", ")}; regions ${Array.isArray(me.regions) ? me.regions.join(", ") : me.regions}).`
    + (hidden.length ? ` Not shown for your roles: ${hidden.join("; ")}.` : "");
}

/** Show the sign-in form (once) above the page, with why (no token, expired, revoked...). */
function showSignIn(reason) {
  let box = document.getElementById("signin");
  if (!box) {
    const input = el("input", { type: "password", id: "signin-token", name: "token", required: true, autocomplete: "off",
      placeholder: "rtk_…", "aria-label": "API token", size: 48 });
    box = el("form", { class: "signin", id: "signin", onsubmit: (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      window.location.reload();
    } },
    el("strong", {}, "Sign in"), " with an API token (ask an admin; kept in this tab only): ", input,
    el("button", { type: "submit", class: "btn primary", id: "signin-btn" }, "Sign in"),
    el("span", { class: "signin-reason", id: "signin-reason" }));
    document.body.prepend(box);
  }
  byId("signin-reason").textContent = reason ? ` ${reason}` : "";
}

/** The signed-in user in the top bar (GET /me), with a sign-out button; the sign-in form without a token. */
export async function whoAmI() {
  if (!getToken()) {
    showSignIn("Without a token this page shows nothing and asks the API for nothing.");
    return null;
  }
  try {
    const me = await getJSON("/me");
    session.me = me;
    const chips = document.querySelector(".topbar .chips");
    if (chips && !byId("user-chip")) {
      chips.append(el("span", { class: "chip", id: "user-chip", title: `roles: ${me.roles.join(", ")}; regions: ${me.regions}` },
        `user: ${me.user}`), el("button", { type: "button", class: "btn", id: "signout-btn", onclick: signOut }, "Sign out"));
    }
    renderAccessNote();
    return me;
  } catch (err) {
    return null;
  }
}

// --- HTTP --------------------------------------------------------------------------------------
export class HttpError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

async function send(path, init) {
  const token = getToken();
  if (!token && !path.startsWith("/health")) throw new HttpError(401, "not signed in: no API token");
  if (session.stopped) throw new HttpError(401, "signed out: sign in again");
  const cached = (init.method || "GET") === "GET" && refused.get(path);
  if (cached) throw cached; // answered 403 before: not asked again
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  return fetch(`${API}${path}`, { cache: "no-store", ...init, headers: { Accept: "application/json", ...auth, ...init.headers } });
}

async function request(path, init = {}, okStatuses = []) {
  const response = await send(path, init);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = body && typeof body.detail === "string" ? body.detail : body && body.detail ? JSON.stringify(body.detail) : response.statusText;
  if (response.status === 401) {
    session.stopped = true; // every poll stops until the user signs in again
    showSignIn(detail || "");
  }
  if (!response.ok && !okStatuses.includes(response.status)) {
    const err = new HttpError(response.status, detail || `HTTP ${response.status}`);
    if (response.status === 403 && (init.method || "GET") === "GET") refused.set(path, err);
    throw err;
  }
  return body;
}

/** Download an export (CSV, JSON lines) with the signed-in user's token, as a file named by the server. */
export async function download(path) {
  const response = await send(path, { headers: { Accept: "*/*" } });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // not JSON
    }
    throw new HttpError(response.status, detail);
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "export";
  saveFile(name, await response.blob());
  return name;
}

/** Offer ``blob`` (or text) as a file download named ``name``. */
export function saveFile(name, blob, type = "text/csv") {
  const data = blob instanceof Blob ? blob : new Blob([blob], { type });
  const link = el("a", { href: URL.createObjectURL(data), download: name, hidden: true });
  document.body.append(link);
  link.click();
  setTimeout(() => {
    URL.revokeObjectURL(link.href);
    link.remove();
  }, 1000);
}

/** CSV text of rows (arrays), quoting where needed. */
export function csv(rows) {
  const cell = (v) => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}
export const getJSON = (path, okStatuses = []) => request(path, {}, okStatuses);
export const postJSON = (path, body, headers = {}) =>
  request(path, { method: "POST", body: JSON.stringify(body ?? {}), headers: { "Content-Type": "application/json", ...headers } });

/** Review backlog shown on Live and Compliance: quarantine size per state (compliance) and open sequence gaps. */
export async function backlog() {
  const [quarantine, gaps] = await Promise.all([
    hasRole("compliance") ? getJSON("/quarantine?limit=1") : null,
    hasRole("operator", "engineer", "compliance") ? getJSON("/gaps?limit=1") : null,
  ]);
  return { quarantine: quarantine ? quarantine.counts || {} : null, openGaps: gaps ? gaps.open : undefined };
}

/** Run render(value) for a settled promise, or show the failure in #id. */
export function guard(result, id, render) {
  try {
    if (result.status === "fulfilled") render(result.value);
    else if (id) show(id, fail(result.reason));
  } catch (err) {
    console.warn(err);
    if (id) show(id, fail(err));
  }
}

/** Keep the page's state in its query string (shareable links), without reloading. */
export function setQuery(params) {
  const url = new URL(window.location.href);
  for (const [key, val] of Object.entries(params)) {
    if (val === undefined || val === null || val === "") url.searchParams.delete(key);
    else url.searchParams.set(key, val);
  }
  window.history.replaceState(null, "", url);
}
export const query = (key) => new URL(window.location.href).searchParams.get(key);

// Every page: show who is signed in, or the sign-in form; pages await this before asking the API for anything.
export const ready = whoAmI();
