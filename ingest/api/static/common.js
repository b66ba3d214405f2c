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
export const fail = (err) => el("p", { class: "error" }, `unavailable: ${err.message || err}`);
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
    showSignIn("");
    return null;
  }
  try {
    const me = await getJSON("/me");
    const chips = document.querySelector(".topbar .chips");
    if (chips && !byId("user-chip")) {
      chips.append(el("span", { class: "chip", id: "user-chip", title: `roles: ${me.roles.join(", ")}; regions: ${me.regions}` },
        `user: ${me.user}`), el("button", { type: "button", class: "btn", id: "signout-btn", onclick: signOut }, "Sign out"));
    }
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

async function request(path, init = {}, okStatuses = []) {
  const token = getToken();
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${API}${path}`, { cache: "no-store", ...init, headers: { Accept: "application/json", ...auth, ...init.headers } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) showSignIn(body && typeof body.detail === "string" ? body.detail : "");
  if (!response.ok && !okStatuses.includes(response.status)) {
    const detail = body && typeof body.detail === "string" ? body.detail : body && body.detail ? JSON.stringify(body.detail) : response.statusText;
    throw new HttpError(response.status, detail || `HTTP ${response.status}`);
  }
  return body;
}
export const getJSON = (path, okStatuses = []) => request(path, {}, okStatuses);
export const postJSON = (path, body, headers = {}) =>
  request(path, { method: "POST", body: JSON.stringify(body ?? {}), headers: { "Content-Type": "application/json", ...headers } });

/** Review backlog shown on Live and Compliance: quarantine size per state and open sequence gaps. */
export async function backlog() {
  const [quarantine, gaps] = await Promise.all([getJSON("/quarantine?limit=1"), getJSON("/gaps?limit=1")]);
  return { quarantine: quarantine.counts || {}, openGaps: gaps.open };
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

// Every page: show who is signed in, or the sign-in form.
whoAmI();
