// The cluster page of `eventmodel serve`: plain JavaScript, no build step, no CDN.
// Nodes are drawn on one canvas (no row per node or instance in the DOM); instances are
// fetched on demand (search, a node's page of instances); /api/status is polled.
"use strict";

const POLL_MS = 2000;          // status
const NODES_EVERY_MS = 5000;   // node list, when the position moved
const COLORS = { vcpu: "#3b82c4", ram: "#7a5cc2", disk: "#2f9c8a", hot: "#d9503f", warn: "#e0a030",
                 track: "#e4e8ee", disabled: "#9aa3ad", down: "#c62828", ink: "#1d2430", muted: "#6b7482" };
// cell sizes: big with a label for a small cluster, small enough for 1,000+ nodes
const CELLS = [
  { upTo: 80, w: 118, h: 46, gap: 6, bar: 7, pad: 4, label: true },
  { upTo: 400, w: 56, h: 33, gap: 5, bar: 6, pad: 4, label: false },
  { upTo: Infinity, w: 34, h: 27, gap: 4, bar: 5, pad: 3, label: false },
];
let CELL = CELLS[2];
const GROUP_HEAD = 22;

const state = {
  nodes: [], position: null, nodesAt: 0, nodesPosition: null, groupBy: "zone",
  layout: [], lagHistory: [], status: null, selected: null, fetchingNodes: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = { error: `HTTP ${r.status}` }; }
  if (!r.ok) { const err = new Error(body && body.error ? body.error : `HTTP ${r.status}`); err.status = r.status; throw err; }
  return body;
}

// One path segment from a cloud-supplied key (a node name, an instance uuid): every
// character that could leave the route encoded ("/" as %2F, never un-escaped), and the
// keys a URL parser would resolve as a dot segment ("." and "..") refused,
// so that no key makes the page fetch another route than the one it means.
function seg(key) {
  const k = String(key);
  if (k === "" || k === "." || k === "..") { const e = new Error(`cannot look up ${JSON.stringify(k)}`); e.status = 404; throw e; }
  return encodeURIComponent(k);
}

const fmt = (n) => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
const short = (t) => t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";

// ---------------------------------------------------------------- status -----
async function pollStatus() {
  try {
    const s = await api("/api/status");
    state.status = s;
    $("log-url").textContent = s.log;
    $("log-url").title = s.log;
    $("position").textContent = s.position === null ? "restoring…" : s.position;
    $("lag").textContent = `${fmt(s.lag.records)} records · ${fmt(s.lag.seconds)} s`;
    $("updated").textContent = new Date().toLocaleTimeString();
    const st = $("state");
    st.className = "state " + (s.stale ? "stale" : s.ready ? "ready" : "notready");
    st.textContent = s.stale ? "stale" : s.ready ? "ready" : (s.held ? "held" : "not ready");
    st.title = s.ready_reason;
    $("logout").hidden = !s.session;
    const banner = $("stale");
    banner.hidden = !s.stale;
    banner.textContent = s.stale ? `The model may be out of date: ${s.stale}` : "";
    state.lagHistory.push({ t: Date.now(), records: s.lag.records, seconds: s.lag.seconds });
    while (state.lagHistory.length > 300) state.lagHistory.shift();
    drawLag();
    drawDrift(s.syncs || []);
    if (s.position !== null && s.position !== state.nodesPosition && Date.now() - state.nodesAt > NODES_EVERY_MS) {
      loadNodes();
    }
  } catch (e) {
    $("updated").textContent = `error: ${e.message}`;
  } finally {
    setTimeout(pollStatus, POLL_MS);
  }
}

// ----------------------------------------------------------------- nodes -----
async function loadNodes() {
  if (state.fetchingNodes) return;
  state.fetchingNodes = true;
  try {
    const all = [];
    let cursor = null, position = null;
    do {
      const q = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await api(`/api/nodes?limit=5000${q}`);
      position = position || page.position;
      all.push(...page.items);
      cursor = page.next;
    } while (cursor !== null);
    state.nodes = all;
    state.nodesPosition = position;
    state.nodesAt = Date.now();
    drawCluster();
  } catch (e) {
    $("node-count").textContent = `(${e.message})`;
  } finally {
    state.fetchingNodes = false;
  }
}

function groupsOf(nodes) {
  const groups = new Map();
  const add = (name, n) => { if (!groups.has(name)) groups.set(name, []); groups.get(name).push(n); };
  for (const n of nodes) {
    if (state.groupBy === "zone") add(n.zone ? `zone ${n.zone}` : "no zone", n);
    else if (state.groupBy === "aggregate") {
      if (n.aggregates.length) for (const a of n.aggregates) add(`aggregate ${a}`, n);
      else add("in no aggregate", n);
    } else add("all nodes", n);
  }
  return [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]));
}

function frac(n, k) { const c = n.capacity[k]; return c > 0 ? n.used[k] / c : (n.used[k] > 0 ? 2 : 0); }

function drawCluster() {
  const canvas = $("cluster");
  CELL = CELLS.find((c) => state.nodes.length <= c.upTo);
  const width = canvas.parentElement.clientWidth || 800;
  const perRow = Math.max(1, Math.floor((width + CELL.gap) / (CELL.w + CELL.gap)));
  const groups = groupsOf(state.nodes);
  // layout first, to size the canvas
  const layout = [];
  let y = 0;
  for (const [name, members] of groups) {
    layout.push({ head: `${name} — ${members.length.toLocaleString("en-US")} node${members.length === 1 ? "" : "s"}`, y });
    y += GROUP_HEAD;
    members.forEach((n, i) => {
      layout.push({ node: n, x: (i % perRow) * (CELL.w + CELL.gap), y: y + Math.floor(i / perRow) * (CELL.h + CELL.gap) });
    });
    y += Math.ceil(members.length / perRow) * (CELL.h + CELL.gap) + 8;
  }
  const height = Math.max(y, 40);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.height = `${height}px`;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "600 12px system-ui, sans-serif";
  g.textBaseline = "middle";
  for (const item of layout) {
    if (item.head) {
      g.font = "600 12px system-ui, sans-serif"; g.textBaseline = "middle"; g.fillStyle = COLORS.ink;
      g.fillText(item.head, 0, item.y + GROUP_HEAD / 2);
      continue;
    }
    drawNode(g, item.node, item.x, item.y);
  }
  state.layout = layout;
  const distinct = state.nodes.length;
  canvas.dataset.nodeCount = String(distinct);
  const down = state.nodes.filter((n) => !n.up).length, disabled = state.nodes.filter((n) => n.disabled).length;
  $("node-count").textContent = `${distinct.toLocaleString("en-US")} nodes · ${disabled} disabled · ${down} down · at position ${state.nodesPosition}`;
  if (state.selected && state.selected.kind === "node") highlight(state.selected.key);
}

function drawNode(g, n, x, y) {
  g.fillStyle = "#fff";
  g.fillRect(x, y, CELL.w, CELL.h);
  const kinds = [["vcpus", COLORS.vcpu], ["memory_mb", COLORS.ram], ["disk_gb", COLORS.disk]];
  kinds.forEach(([k, color], i) => {
    const by = y + CELL.pad + 1 + i * (CELL.bar + 2);
    const bw = CELL.w - 2 * CELL.pad;
    g.fillStyle = COLORS.track;
    g.fillRect(x + CELL.pad, by, bw, CELL.bar);
    const f = frac(n, k);
    g.fillStyle = f >= 0.9 ? COLORS.hot : color;
    g.fillRect(x + CELL.pad, by, Math.max(f > 0 ? 1 : 0, Math.min(1, f) * bw), CELL.bar);
  });
  if (n.disabled) {
    g.save();
    g.beginPath(); g.rect(x, y, CELL.w, CELL.h); g.clip();
    g.strokeStyle = "rgba(90,98,108,.55)"; g.lineWidth = 1.2;
    for (let d = -CELL.h; d < CELL.w; d += 5) { g.beginPath(); g.moveTo(x + d, y + CELL.h); g.lineTo(x + d + CELL.h, y); g.stroke(); }
    g.restore();
  }
  if (CELL.label) {
    g.fillStyle = n.up ? COLORS.ink : COLORS.down;
    g.font = "10px system-ui, sans-serif";
    g.textBaseline = "alphabetic";
    let name = n.name.split(".")[0];
    while (name.length > 3 && g.measureText(name).width > CELL.w - 2 * CELL.pad) name = name.slice(0, -2) + "…";
    g.fillText(name, x + CELL.pad, y + CELL.h - CELL.pad);
  }
  g.lineWidth = n.up ? 1 : 2.5;
  g.strokeStyle = n.up ? "#c9ced6" : COLORS.down;
  g.strokeRect(x + 0.5, y + 0.5, CELL.w - 1, CELL.h - 1);
  if (!n.up) {
    g.strokeStyle = COLORS.down; g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x + 3, y + 3); g.lineTo(x + CELL.w - 3, y + CELL.h - 3); g.stroke();
  }
}

function highlight(name) {
  const g = $("cluster").getContext("2d");
  for (const item of state.layout) {
    if (item.node && item.node.name === name) {
      g.strokeStyle = "#111"; g.lineWidth = 2;
      g.strokeRect(item.x - 1.5, item.y - 1.5, CELL.w + 3, CELL.h + 3);
    }
  }
}

function nodeAt(ev) {
  const r = $("cluster").getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  for (const item of state.layout) {
    if (item.node && x >= item.x && x < item.x + CELL.w && y >= item.y && y < item.y + CELL.h) return { item, x, y };
  }
  return null;
}

function pct(n, k) { const c = n.capacity[k]; return c > 0 ? `${Math.round(100 * n.used[k] / c)} %` : "no capacity"; }

function onHover(ev) {
  const hit = nodeAt(ev), tip = $("tip");
  if (!hit) { tip.hidden = true; return; }
  const n = hit.item.node;
  tip.textContent = `${n.name}  (${n.status}${n.disabled_reason ? ": " + n.disabled_reason : ""})\n` +
    `zone ${n.zone || "–"} · ${n.instances} instances\n` +
    `vCPU ${fmt(n.used.vcpus)} / ${fmt(n.capacity.vcpus)}  ${pct(n, "vcpus")}\n` +
    `RAM  ${fmt(n.used.memory_mb)} / ${fmt(n.capacity.memory_mb)} MB  ${pct(n, "memory_mb")}\n` +
    `disk ${fmt(n.used.disk_gb)} / ${fmt(n.capacity.disk_gb)} GB  ${pct(n, "disk_gb")}`;
  tip.hidden = false;
  const wrap = $("cluster-wrap").clientWidth;
  tip.style.left = `${Math.min(hit.x + 14, wrap - 260)}px`;
  tip.style.top = `${hit.y + 14}px`;
}

// --------------------------------------------------------------- details -----
function row(k, v) { return el("tr", {}, el("td", {}, k), el("td", {}, v === null || v === undefined || v === "" ? "–" : v)); }

function pill(status) { return el("span", { class: `pill ${status}` }, status); }

async function showNode(name) {
  state.selected = { kind: "node", key: name };
  const box = $("details");
  box.replaceChildren(el("h2", {}, "Node"), el("p", { class: "muted" }, "loading…"));
  try {
    const { node: n, position } = await api(`/api/nodes/${seg(name)}`);
    const table = el("table", {},
      row("host", n.host), row("zone", n.zone), row("aggregates", n.aggregates.join(", ")),
      row("status", n.status + (n.disabled_reason ? ` (${n.disabled_reason})` : "")),
      row("hypervisor", `${n.hypervisor_type || "–"}, ${n.hypervisor_state}`),
      row("vCPU", `${fmt(n.used.vcpus)} used of ${fmt(n.capacity.vcpus)} (${fmt(n.free.vcpus)} free)`),
      row("RAM MB", `${fmt(n.used.memory_mb)} used of ${fmt(n.capacity.memory_mb)} (${fmt(n.free.memory_mb)} free)`),
      row("disk GB", `${fmt(n.used.disk_gb)} used of ${fmt(n.capacity.disk_gb)} (${fmt(n.free.disk_gb)} free)`),
      row("read at", `position ${position}`));
    const list = el("ul", { class: "list", id: "node-instances" });
    const more = el("button", { class: "more", hidden: "" }, "more");
    box.replaceChildren(el("h2", {}, "Node"), el("div", { class: "title" }, n.name, pill(n.status)), table,
      el("h3", {}, `Instances (${fmt(n.instances)})`), list, more,
      el("h3", {}, "History"), el("div", { id: "history" }, el("p", { class: "muted" }, "loading…")));
    let cursor = null;
    const page = async () => {
      const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const p = await api(`/api/instances?node=${encodeURIComponent(n.name)}&limit=100${q}`);
      for (const i of p.items) {
        list.append(el("li", { onclick: () => showInstance(i.uuid) }, `${i.name || i.uuid} · ${i.vm_state} · ${i.flavor.name}`));
      }
      cursor = p.next;
      more.hidden = cursor === null;
    };
    more.addEventListener("click", page);
    await page();
    drawCluster();
    await showHistory("node", n.name);
  } catch (e) {
    box.replaceChildren(el("h2", {}, "Node"), el("p", {}, e.message));
  }
}

async function showInstance(uuid) {
  state.selected = { kind: "instance", key: uuid };
  const box = $("details");
  box.replaceChildren(el("h2", {}, "Instance"), el("p", { class: "muted" }, "loading…"));
  try {
    const { instance: i, position } = await api(`/api/instances/${seg(uuid)}`);
    const nodeLink = i.node ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); showNode(i.node); } }, i.node) : "–";
    box.replaceChildren(el("h2", {}, "Instance"),
      el("div", { class: "title", id: "instance-title" }, i.name || i.uuid, el("span", { class: "pill" }, i.vm_state)),
      el("table", {},
        row("uuid", i.uuid), row("node", nodeLink), row("host", i.host),
        row("state", `${i.vm_state} / ${i.power_state || "–"}${i.task_state ? " / " + i.task_state : ""}`),
        row("flavor", `${i.flavor.name}: ${i.flavor.vcpus} vCPU, ${fmt(i.flavor.memory_mb)} MB, ${i.flavor.root_gb + i.flavor.ephemeral_gb} GB`),
        row("project", i.project_id), row("zone", i.availability_zone), row("created", short(i.created_at)),
        row("version", short(i.version)), row("read at", `position ${position}`)),
      el("h3", {}, "History"), el("div", { id: "history" }, el("p", { class: "muted" }, "loading…")));
    await showHistory("instance", i.uuid);
  } catch (e) {
    if (e.status === 404) {  // deleted: its history is still on the log
      box.replaceChildren(el("h2", {}, "Instance"), el("div", { class: "title" }, uuid, el("span", { class: "pill" }, "not in the model")),
        el("h3", {}, "History"), el("div", { id: "history" }));
      await showHistory("instance", uuid);
    } else {
      box.replaceChildren(el("h2", {}, "Instance"), el("p", {}, e.message));
    }
  }
}

function typeColor(type) {
  if (type.endsWith(".deleted")) return COLORS.down;
  if (type.endsWith(".observed") || type.endsWith(".seen")) return COLORS.muted;
  if (type.includes("migrat")) return COLORS.ram;
  if (type.includes("resize")) return COLORS.warn;
  if (type.includes("created")) return COLORS.disk;
  return COLORS.vcpu;
}

async function showHistory(kind, key) {
  const box = $("history");
  try {
    const items = [];
    let cursor = null, more = false;
    do {
      const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const p = await api(`/api/history/${seg(kind)}/${seg(key)}?limit=500${q}`);
      items.push(...p.items); cursor = items.length < 2000 ? p.next : null; more = p.next !== null;
    } while (cursor);
    const svg = timeline(items);
    const list = el("ul", { class: "events", id: "history-events" });
    for (const it of items) {  // newest first, as the API answers
      const s = it.summary || {};
      const where = [s.node || s.host, s.vm_state, s.flavor, s.source_node ? `from ${s.source_node}` : null,
                     s.disabled === true ? "disabled" : null, s.forced_down ? "forced down" : null].filter(Boolean).join(" · ");
      const li = el("li", { style: `--c:${typeColor(it.type)}` },
        el("div", {}, el("span", { class: "ty" }, it.type), " ", el("span", { class: "t" }, short(it.recorded_at))),
        el("div", { class: "muted small" }, where || it.source));
      li.title = `${it.partition}:${it.offset} · ${it.source} · version ${it.version || "–"}`;
      list.append(li);
    }
    const n = items.length;
    box.replaceChildren(svg, el("p", { class: "muted small" }, `${more ? "the newest " : ""}${n} record${n === 1 ? "" : "s"} on the log, newest first`), list);
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted" }, e.status === 404 ? "no records on the log" : e.message));
  }
}

function timeline(items) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "timeline");
  svg.setAttribute("viewBox", "0 0 400 64");
  svg.setAttribute("preserveAspectRatio", "none");
  const times = items.map((it) => Date.parse(it.recorded_at)).filter((t) => !Number.isNaN(t));
  const line = document.createElementNS(NS, "line");
  Object.entries({ x1: 8, x2: 392, y1: 34, y2: 34, stroke: "#c9ced6", "stroke-width": 2 }).forEach(([k, v]) => line.setAttribute(k, v));
  svg.append(line);
  if (!times.length) return svg;
  const lo = Math.min(...times), hi = Math.max(...times), span = Math.max(hi - lo, 1);
  items.forEach((it) => {
    const t = Date.parse(it.recorded_at);
    if (Number.isNaN(t)) return;
    const c = document.createElementNS(NS, "circle");
    const x = 8 + (384 * (t - lo)) / span;
    Object.entries({ cx: x, cy: 34, r: 5, fill: typeColor(it.type), stroke: "#fff", "stroke-width": 1.5 }).forEach(([k, v]) => c.setAttribute(k, v));
    const title = document.createElementNS(NS, "title");
    title.textContent = `${it.type} ${short(it.recorded_at)}`;
    c.append(title);
    svg.append(c);
  });
  const label = (x, text, anchor) => {
    const t = document.createElementNS(NS, "text");
    Object.entries({ x, y: 58, "font-size": 10, fill: COLORS.muted, "text-anchor": anchor }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = text;
    svg.append(t);
  };
  label(8, short(new Date(lo).toISOString()), "start");
  if (hi > lo) label(392, short(new Date(hi).toISOString()), "end");
  return svg;
}

// ---------------------------------------------------------------- search -----
let searchTimer = null, lastResults = [];
function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 200);
}

async function runSearch() {
  const q = $("search").value.trim();
  const ul = $("results");
  if (!q) { ul.hidden = true; return; }
  try {
    const r = await api(`/api/search?q=${encodeURIComponent(q)}&limit=20`);
    lastResults = [
      ...r.nodes.map((n) => ({ kind: "node", key: n, label: n })),
      ...r.instances.map((i) => ({ kind: "instance", key: i.uuid, label: `${i.name || "(no name)"} · ${i.uuid} · ${i.vm_state}` })),
    ];
    ul.replaceChildren(...(lastResults.length ? lastResults.map((x) =>
      el("li", { onclick: () => choose(x) }, el("span", { class: "kind" }, x.kind), x.label))
      : [el("li", { class: "muted" }, `nothing matches “${q}”`)]));
    ul.hidden = false;
  } catch (e) {
    ul.replaceChildren(el("li", { class: "muted" }, e.message));
    ul.hidden = false;
  }
}

function choose(x) {
  $("results").hidden = true;
  if (x.kind === "node") showNode(x.key); else showInstance(x.key);
}

// ---------------------------------------------------------------- charts -----
function sizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = Number(canvas.getAttribute("height")) || 120;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  canvas.style.height = `${h}px`;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = "11px system-ui, sans-serif";
  return { g, w, h };
}

function drawDrift(syncs) {
  const { g, w, h } = sizeCanvas($("drift"));
  const note = $("drift-note");
  if (!syncs.length) { g.fillStyle = COLORS.muted; g.fillText("no full sync completed yet", 8, h / 2); note.textContent = ""; return; }
  const recent = syncs.slice(-30);
  const max = Math.max(1, ...recent.map((s) => s.corrected));
  const bw = Math.min(28, (w - 40) / recent.length - 4);
  g.fillStyle = COLORS.muted;
  g.fillText(String(max), 2, 10);
  g.fillText("0", 2, h - 20);
  recent.forEach((s, i) => {
    const x = 36 + i * (bw + 4);
    const bh = ((h - 34) * s.corrected) / max;
    g.fillStyle = COLORS.warn;
    g.fillRect(x, h - 20 - bh, bw, bh);
    const dh = ((h - 34) * s.deleted) / max;
    g.fillStyle = COLORS.hot;
    g.fillRect(x, h - 20 - dh, bw, dh);
  });
  g.fillStyle = COLORS.muted;
  g.fillText(short(recent[0].completed_at).slice(5, 16), 36, h - 6);
  const last = recent[recent.length - 1];
  note.textContent = `last: ${fmt(last.corrected)} corrected (${fmt(last.deleted)} deleted) of ${fmt(last.observed)} observed, ` +
    `${short(last.completed_at)}, read in ${fmt(last.duration_seconds)} s · orange: corrected, red: deleted`;
}

function drawLag() {
  const { g, w, h } = sizeCanvas($("lagchart"));
  const pts = state.lagHistory;
  if (!pts.length) return;
  const max = Math.max(1, ...pts.map((p) => p.records));
  const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1);
  g.strokeStyle = COLORS.vcpu; g.lineWidth = 1.5;
  g.beginPath();
  pts.forEach((p, i) => {
    const x = 36 + ((w - 40) * (p.t - t0)) / (t1 - t0), y = h - 14 - ((h - 24) * p.records) / max;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  if (pts.length === 1) g.lineTo(w - 4, h - 14 - ((h - 24) * pts[0].records) / max);  // one sample: a flat line
  g.stroke();
  g.fillStyle = COLORS.muted;
  g.fillText(fmt(max), 2, 10);
  g.fillText("0", 2, h - 14);
  const last = pts[pts.length - 1];
  $("lag-note").textContent = `records not folded yet over the last ${Math.round((t1 - t0) / 1000)} s; now ${fmt(last.records)} (${fmt(last.seconds)} s behind)`;
}

// ----------------------------------------------------------------- start -----
window.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("input", onSearchInput);
  $("search").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); clearTimeout(searchTimer); runSearch().then(() => { if (lastResults.length) choose(lastResults[0]); }); }
    if (e.key === "Escape") $("results").hidden = true;
  });
  $("group-by").addEventListener("change", (e) => { state.groupBy = e.target.value; drawCluster(); });
  const canvas = $("cluster");
  canvas.addEventListener("mousemove", onHover);
  canvas.addEventListener("mouseleave", () => { $("tip").hidden = true; });
  canvas.addEventListener("click", (ev) => { const hit = nodeAt(ev); if (hit) showNode(hit.item.node.name); });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { drawCluster(); drawLag(); }, 150); });
  document.addEventListener("click", (e) => { if (!e.target.closest(".search")) $("results").hidden = true; });
  pollStatus();
  loadNodes().then(() => { document.body.dataset.firstRender = String(performance.now()); });
});
