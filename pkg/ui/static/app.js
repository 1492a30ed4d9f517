// Kahuna dashboard: polls the REST API of the node that served this page
// and renders what it says. Plain modern JavaScript, no framework and no
// build step; every value that comes from the cluster is put into the page
// as text, never as HTML, because resource and owner names are anyone's.
"use strict";

const REFRESH_MS = 2000;
// How long the outcome of a force-unlock stays on screen.
const RESULT_MS = 30000;
// How long a force-unlock retries MustRetry (each try may be held ~3 s).
const FORCE_RETRY_MS = 10000;
// A request to a partition without a leader is held ~3 s before it answers
// MustRetry; wait a little longer than that before calling the node dead.
const TIMEOUT_MS = 8000;
// sessionStorage, not localStorage: the token lives as long as the tab.
const TOKEN_KEY = "kahuna.token";

const TYPE_NAMES = {
  0: "Locked", 1: "Busy", 2: "Extended", 3: "Unlocked", 4: "Got", 99: "Errored",
  100: "InvalidInput", 101: "MustRetry", 102: "LockDoesNotExist", 103: "InvalidOwner",
};
const DURABILITY_NAMES = { 0: "ephemeral", 1: "persistent" };

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  prefix: "",
  durability: 1,
  limit: 25,
  cursors: [""], // the cursor of every page visited; the last is shown
  nextCursor: "",
  lastOk: null, // when every request of a refresh last succeeded
  forceDenied: "", // why this token may not force-unlock, after a 403
  refreshes: 0,
  timer: 0,
  resultTimer: 0,
  running: false,
  again: false,
};

// ---- talking to the API ----

// api fetches a path of this node and returns its status and JSON body.
// It rejects only when no HTTP answer came (network error or timeout).
async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page, say); the status still tells.
  }
  return { status: resp.status, body: json, text };
}

function typeName(t) {
  return TYPE_NAMES[t] || (t === undefined ? "no reply type" : "type " + t);
}

// failureText explains a rejected api() call.
function failureText(err) {
  if (err && err.name === "TimeoutError") return `no answer within ${TIMEOUT_MS / 1000} s`;
  if (err instanceof TypeError) return "the node is unreachable (network error)";
  return String(err && err.message ? err.message : err);
}

// authText explains a 401 or 403 in words: the operator has to tell a
// wrong token from a right token with too small a role.
function authText(r, action) {
  const detail = r.body && r.body.error ? ` Server says: ${r.body.error}` : "";
  if (r.status === 401) {
    const why = state.token
      ? "the cluster does not know this token"
      : "the cluster needs a token; enter one above";
    return `Token refused (HTTP 401): ${why}.${detail}`;
  }
  return `Forbidden (HTTP 403): this token's role may not ${action}.${detail}`;
}

function isAuthStatus(r) {
  return r.status === 401 || r.status === 403;
}

function listURL() {
  const q = new URLSearchParams({
    prefix: state.prefix,
    limit: String(state.limit),
    durability: String(state.durability),
  });
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) q.set("cursor", cursor);
  return "/v1/locks?" + q.toString();
}

// queryKey identifies the lock page asked for, so an answer that arrives
// after the operator moved on is not drawn over the new one.
function queryKey() {
  return listURL();
}

// ---- the refresh loop ----

// refresh runs one refresh now, or right after the one in flight, and
// schedules the next; refreshes never overlap.
function refresh() {
  if (state.running) {
    state.again = true;
    return;
  }
  clearTimeout(state.timer);
  state.running = true;
  refreshOnce()
    .catch((err) => showStale(failureText(err)))
    .finally(() => {
      state.running = false;
      if (state.again) {
        state.again = false;
        refresh();
      } else {
        state.timer = setTimeout(refresh, REFRESH_MS);
      }
    });
}

async function refreshOnce() {
  const key = queryKey();
  const [ready, status, list] = await Promise.allSettled([
    api("/readyz", { auth: false }),
    api("/v1/cluster/status"),
    api(key),
  ]);
  const failures = [];
  const refusals = [];

  if (ready.status === "fulfilled") {
    renderReady(ready.value);
  } else {
    failures.push("readiness: " + failureText(ready.reason));
  }

  if (status.status === "rejected") {
    failures.push("cluster status: " + failureText(status.reason));
  } else if (isAuthStatus(status.value)) {
    refusals.push(status.value.status);
    showAuth(status.value.status, authText(status.value, "read the cluster status"));
    clearCluster();
  } else if (status.value.status === 200 && status.value.body && status.value.body.type === 4) {
    renderCluster(status.value.body);
  } else {
    failures.push("cluster status: " + describeBad(status.value));
  }

  if (key === queryKey()) {
    if (list.status === "rejected") {
      failures.push("locks: " + failureText(list.reason));
      markLocksStale();
    } else if (isAuthStatus(list.value)) {
      // A refused cluster status already said what is wrong with the
      // token; a refused list alone means the prefix is not this token's.
      if (refusals.length === 0) {
        showAuth(list.value.status, authText(list.value, "list locks under this prefix"));
      }
      refusals.push(list.value.status);
      clearLocks();
    } else if (list.value.status === 200 && list.value.body && list.value.body.type === 4) {
      renderLocks(list.value.body);
    } else {
      showLocksError(describeBad(list.value));
    }
  }

  if (refusals.length === 0) hideAuth();
  state.refreshes++;
  document.body.dataset.refreshes = String(state.refreshes);
  if (failures.length > 0) {
    showStale(failures.join("; "));
  } else {
    state.lastOk = new Date();
    hideStale();
  }
}

// describeBad words an answer that came but is not what was asked for.
function describeBad(r) {
  if (r.body && r.body.type !== undefined) {
    const http = r.status === 200 ? "" : ` (HTTP ${r.status})`;
    return `${typeName(r.body.type)}${r.body.error ? ": " + r.body.error : ""}${http}`;
  }
  return `HTTP ${r.status}${r.text ? ": " + r.text.slice(0, 200) : ""}`;
}

// ---- banners ----

function showBanner(el, text) {
  el.textContent = text;
  el.hidden = false;
}

function renderReady(r) {
  const el = $("ready-banner");
  if (r.status === 200) {
    el.hidden = true;
    el.dataset.ready = "true";
    return;
  }
  el.dataset.ready = "false";
  const who = (r.body && r.body.servedFrom) || "this node";
  const why = (r.body && r.body.reason) || describeBad(r);
  showBanner(el, `Node ${who} is not ready (HTTP ${r.status}): ${why}. ` +
    "Requests through it may be held or answer MustRetry.");
}

function showAuth(status, text) {
  const el = $("auth-banner");
  el.dataset.status = String(status);
  showBanner(el, text);
}

function hideAuth() {
  const el = $("auth-banner");
  el.hidden = true;
  el.dataset.status = "";
}

function showStale(why) {
  const at = new Date().toLocaleTimeString();
  const since = state.lastOk ? `data shown is from ${state.lastOk.toLocaleTimeString()}` : "no data yet";
  showBanner($("stale-banner"), `Refresh failed at ${at}: ${why}. The ${since}.`);
  const last = $("last-refresh");
  last.dataset.state = "failed";
  last.textContent = `refresh failed at ${at}`;
  for (const id of ["nodes", "partitions"]) $(id).classList.add("stale");
}

function hideStale() {
  $("stale-banner").hidden = true;
  const last = $("last-refresh");
  last.dataset.state = "ok";
  last.dataset.at = String(state.lastOk.getTime());
  last.textContent = `updated ${state.lastOk.toLocaleTimeString()}`;
  for (const id of ["nodes", "partitions"]) $(id).classList.remove("stale");
}

// showResult reports the outcome of an operator's action, with its time,
// for a while: long enough to read, not so long that it reads as news.
function showResult(kind, outcome, text) {
  const el = $("action-result");
  el.className = "banner " + kind;
  el.dataset.outcome = outcome;
  showBanner(el, `${new Date().toLocaleTimeString()}: ${text}`);
  clearTimeout(state.resultTimer);
  state.resultTimer = setTimeout(() => { el.hidden = true; }, RESULT_MS);
}

// ---- cluster ----

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  return td;
}

function pill(text, kind) {
  const span = document.createElement("span");
  span.className = "pill " + kind;
  span.textContent = text;
  return span;
}

const STATE_KIND = { alive: "ok", suspect: "warn", failed: "bad", left: "bad" };
const ROLE_KIND = { voter: "ok", "non-voter": "warn", joining: "warn", none: "bad" };

function renderCluster(st) {
  const me = (st.node && st.node.id) || st.servedFrom || "";
  const from = $("served-from");
  from.dataset.node = me;
  from.textContent = `node ${me}`;

  const nodes = [...(st.nodes || [])].sort((a, b) => a.id.localeCompare(b.id));
  $("node-count").textContent = `(${nodes.length})`;
  renderRows($("nodes"), nodes, (n) => nodeRow(n, me), me);

  const parts = [...(st.partitions || [])].sort((a, b) => a.id - b.id);
  $("partition-count").textContent = `(${parts.length})`;
  renderRows($("partitions"), parts, (p) => partitionRow(p, me), me);

  const leaderless = parts.filter((p) => !p.leader).map((p) => p.id);
  const banner = $("leaderless-banner");
  banner.dataset.partitions = leaderless.join(",");
  if (leaderless.length === 0) {
    banner.hidden = true;
  } else {
    const which = leaderless.length === 1
      ? `Partition ${leaderless[0]} has no leader: its`
      : `Partitions ${leaderless.join(", ")} have no leader: their`;
    showBanner(banner, `${which} locks cannot be taken or released until an election ` +
      "succeeds (requests are held ~3 s, then answer MustRetry).");
  }
}

// renderRows redraws a table's body only when what it shows changed, so
// that an unchanged table keeps the operator's text selection and focus
// across refreshes (and a button does not move under a click).
const drawn = new WeakMap(); // table → the key of what its rows show

function renderRows(table, items, rowFn, extra) {
  const key = JSON.stringify([items, extra]);
  if (drawn.get(table) === key) return false;
  drawn.set(table, key);
  table.tBodies[0].replaceChildren(...items.map(rowFn));
  table.dataset.draws = String(Number(table.dataset.draws || 0) + 1);
  return true;
}

function nodeRow(n, me) {
  const tr = document.createElement("tr");
  tr.dataset.node = n.id;
  tr.dataset.state = n.state;
  tr.dataset.role = n.role;
  const name = document.createElement("span");
  name.textContent = n.id;
  const idCell = cell(name, "mono");
  if (n.id === me) {
    const you = document.createElement("span");
    you.className = "you";
    you.textContent = "(this page's node)";
    idCell.append(you);
  }
  tr.append(
    idCell,
    cell(pill(n.state, STATE_KIND[n.state] || "warn")),
    cell(pill(n.role || "?", ROLE_KIND[n.role] || "warn")),
    cell(n.httpAddr || "", "mono"),
    cell(n.raftAddr || "", "mono wide"),
  );
  for (const [td, field] of zip(tr.cells, ["id", "state", "role", "http", "raft"])) td.dataset.field = field;
  return tr;
}

function partitionRow(p, me) {
  const tr = document.createElement("tr");
  tr.dataset.partition = String(p.id);
  tr.dataset.leader = p.leader || "";
  let leader;
  if (p.leader) {
    leader = document.createElement("span");
    leader.className = "mono";
    leader.textContent = p.leader;
  } else {
    tr.classList.add("leaderless");
    leader = document.createElement("span");
    leader.className = "leader-none";
    leader.textContent = "⚠ no leader";
  }
  const idCell = cell(String(p.id), "mono");
  if (p.state) {
    // Term and indexes are this node's view, which a lagging follower
    // shows behind the leader's.
    const role = document.createElement("span");
    role.className = "you here";
    role.textContent = `(${me}: ${p.state})`;
    role.title = `${me} is ${p.state} of partition ${p.id}; term and indexes are as ${me} sees them`;
    idCell.append(role);
  }
  tr.append(
    idCell,
    cell(leader),
    cell(String(p.term), "num"),
    cell(String(p.commitIndex), "num"),
    cell(String(p.appliedIndex), "num"),
    cell(String(p.locks ?? ""), "num"),
    cell((p.voters || []).join(", ") || "—", "mono"),
    cell((p.nonVoters || []).join(", ") || "—", "mono"),
  );
  const fields = ["id", "leader", "term", "commit", "applied", "locks", "voters", "nonvoters"];
  for (const [td, field] of zip(tr.cells, fields)) td.dataset.field = field;
  return tr;
}

function* zip(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) yield [a[i], b[i]];
}

function clearCluster() {
  for (const id of ["nodes", "partitions"]) {
    $(id).tBodies[0].replaceChildren();
    drawn.delete($(id));
  }
  $("node-count").textContent = "";
  $("partition-count").textContent = "";
  $("leaderless-banner").hidden = true;
}

// ---- locks ----

function renderLocks(reply) {
  $("locks-error").hidden = true;
  const table = $("locks");
  table.classList.remove("stale");
  const locks = reply.locks || [];
  // The remaining time changes at every refresh: it is updated in place,
  // and only a change of the locks themselves redraws the rows.
  const stable = locks.map(({ expiresInMs, ...rest }) => rest);
  if (!renderRows(table, stable, (_, i) => lockRow(locks[i]), state.forceDenied)) {
    const rows = table.tBodies[0].rows;
    locks.forEach((l, i) => {
      const t = rows[i] && rows[i].querySelector("[data-field=expires] time");
      if (t) t.textContent = relative(l.expiresInMs);
    });
  }
  table.dataset.count = String(locks.length);
  table.dataset.page = String(state.cursors.length);
  $("locks-empty").hidden = locks.length > 0;
  $("locks-empty").textContent = state.cursors.length > 1 ? "No live locks on this page." : "No live locks match.";
  state.nextCursor = reply.nextCursor || "";
  renderPager();
}

function lockRow(l) {
  const tr = document.createElement("tr");
  tr.dataset.resource = l.resource;
  tr.dataset.owner = l.owner;
  tr.dataset.fencingToken = String(l.fencingToken);

  const expires = document.createElement("time");
  expires.dateTime = l.expiresAt;
  expires.title = `${l.expiresAt} (${new Date(l.expiresAt).toLocaleString()})`;
  expires.textContent = relative(l.expiresInMs);
  const acquired = document.createElement("time");
  acquired.dateTime = l.acquiredAt;
  acquired.title = l.acquiredAt;
  acquired.textContent = new Date(l.acquiredAt).toLocaleString();

  const button = document.createElement("button");
  button.type = "button";
  button.className = "danger";
  button.dataset.action = "force-unlock";
  button.dataset.resource = l.resource;
  button.dataset.durability = String(l.durability);
  button.textContent = "Force-unlock";
  button.setAttribute("aria-label", `Force-unlock ${l.resource}`);
  if (state.forceDenied) {
    button.disabled = true;
    button.title = state.forceDenied;
  }

  tr.append(
    cell(l.resource, "resource mono"),
    cell(l.owner, "mono"),
    cell(String(l.fencingToken), "num"),
    cell(expires),
    cell(acquired, "wide"),
    cell(button),
  );
  const fields = ["resource", "owner", "fencingToken", "expires", "acquired", "actions"];
  for (const [td, field] of zip(tr.cells, fields)) td.dataset.field = field;
  return tr;
}

// relative words a lock's remaining time, as of the refresh.
function relative(ms) {
  if (ms <= 0) return "expiring";
  if (ms < 10_000) return `in ${(ms / 1000).toFixed(1)} s`;
  if (ms < 120_000) return `in ${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `in ${Math.round(ms / 60_000)} min`;
  if (ms < 172_800_000) return `in ${Math.round(ms / 3_600_000)} h`;
  return `in ${Math.round(ms / 86_400_000)} days`;
}

function markLocksStale() {
  $("locks").classList.add("stale");
}

function showLocksError(text) {
  showBanner($("locks-error"), `Could not list locks: ${text}. The rows below may be out of date.`);
  markLocksStale();
}

function clearLocks() {
  $("locks").tBodies[0].replaceChildren();
  drawn.delete($("locks"));
  $("locks").dataset.count = "0";
  $("locks-empty").hidden = true;
  state.nextCursor = "";
  renderPager();
}

function renderPager() {
  const page = state.cursors.length;
  $("page-info").textContent = `page ${page}`;
  $("prev-page").disabled = page <= 1;
  $("next-page").disabled = !state.nextCursor;
}

// search starts the lock list over from page 1 with the form's values.
function search() {
  state.prefix = $("prefix").value;
  state.durability = $("durability-ephemeral").checked ? 0 : 1;
  state.limit = Number($("page-size").value) || 25;
  state.cursors = [""];
  state.nextCursor = "";
  renderPager();
  refresh();
}

// ---- force-unlock ----

async function forceUnlock(resource, durability) {
  const dname = DURABILITY_NAMES[durability] || "?";
  const question = `Force-unlock the ${dname} lock "${resource}"?\n\n` +
    "Its holder is not told and may go on as if it held the lock; the next owner " +
    "gets a higher fencing token. Use this only for a stuck lock.";
  if (!confirm(question)) {
    showResult("", "cancelled", `Force-unlock of "${resource}" cancelled.`);
    return;
  }
  showResult("", "pending", `Force-unlocking "${resource}"…`);
  let r;
  let unknown = false; // an earlier attempt answered MustRetry
  const deadline = Date.now() + FORCE_RETRY_MS;
  for (;;) {
    try {
      r = await api("/v1/locks/force-unlock", { method: "POST", body: { resource, durability } });
    } catch (err) {
      showResult("bad", "error", `Force-unlock of "${resource}" failed: ${failureText(err)}. ` +
        "Whether it happened is unknown; the list will tell.");
      refresh();
      return;
    }
    // MustRetry: no leader, or the outcome is unknown (leadership lost
    // mid-commit). The contract makes a retry safe, as the CLI does.
    if (!(r.body && r.body.type === 101) || Date.now() > deadline) break;
    unknown = true;
    await new Promise((done) => setTimeout(done, 300));
  }
  if (isAuthStatus(r)) {
    const text = authText(r, "force-unlock locks (it needs the admin role)");
    if (r.status === 403) state.forceDenied = text;
    showResult("bad", String(r.status), text);
  } else if (r.body && r.body.type === 3) {
    showResult("ok", "Unlocked", `Unlocked "${resource}" (${dname}), served by ${r.body.servedFrom}.`);
  } else if (r.body && r.body.type === 102 && unknown) {
    showResult("ok", "LockDoesNotExist", `"${resource}" is not locked now (LockDoesNotExist). A first ` +
      "attempt's outcome was unknown (MustRetry): most likely that attempt released it.");
  } else if (r.body && r.body.type === 102) {
    showResult("warn", "LockDoesNotExist",
      `"${resource}" was not locked (LockDoesNotExist): it was released or expired already.`);
  } else {
    const outcome = r.body ? typeName(r.body.type) : "error";
    showResult("bad", outcome, `Force-unlock of "${resource}" answered ${describeBad(r)}.`);
  }
  refresh();
}

// ---- token ----

function setToken(token) {
  state.token = token;
  state.forceDenied = "";
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  renderToken();
  $("action-result").hidden = true;
  refresh();
}

function renderToken() {
  const el = $("token-state");
  el.dataset.state = state.token ? "set" : "none";
  el.textContent = state.token ? "token set for this tab" : "no token";
}

// ---- wiring ----

function init() {
  renderToken();
  renderPager();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("token");
    const token = input.value.trim();
    input.value = ""; // keep it out of the DOM once it is stored
    setToken(token);
  });
  $("token-clear").addEventListener("click", () => {
    $("token").value = "";
    setToken("");
  });
  $("lock-search").addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  for (const id of ["durability-persistent", "durability-ephemeral", "page-size"]) {
    $(id).addEventListener("change", search);
  }
  $("next-page").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    state.nextCursor = "";
    renderPager();
    refresh();
  });
  $("prev-page").addEventListener("click", () => {
    if (state.cursors.length <= 1) return;
    state.cursors.pop();
    state.nextCursor = "";
    renderPager();
    refresh();
  });
  $("locks").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action='force-unlock']");
    if (button && !button.disabled) forceUnlock(button.dataset.resource, Number(button.dataset.durability));
  });
  refresh();
}

init();
