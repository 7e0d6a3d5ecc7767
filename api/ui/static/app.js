// The builder page's own script: no inline code (the CSP allows only this file).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function postJSON(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await r.json(); } catch (e) { data = { detail: "no JSON answer" }; }
  return { status: r.status, data };
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function detailText(detail) {
  if (Array.isArray(detail)) return detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("\n");
  return String(detail);
}

// Copy buttons.
document.querySelectorAll("[data-copy]").forEach((button) => {
  button.addEventListener("click", async () => {
    const input = document.getElementById(button.dataset.copy);
    input.select();
    try { await navigator.clipboard.writeText(input.value); button.textContent = "Copied"; }
    catch (e) { button.textContent = "Select and copy"; }
  });
});

// Live CEL check of conditions and input mappings (the API's compile).
document.querySelectorAll("[data-cel-check]").forEach((area) => {
  const out = area.parentElement.querySelector("[data-cel-result]");
  let timer = null;
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!area.value.trim()) { out.textContent = ""; area.removeAttribute("aria-invalid"); return; }
      const { data } = await postJSON("/ui/check-condition", { expression: area.value });
      out.textContent = data.ok ? "✓ compiles" : "✗ " + (data.message || data.detail);
      out.classList.toggle("error", !data.ok);
      if (data.ok) area.removeAttribute("aria-invalid"); else area.setAttribute("aria-invalid", "true");
    }, 300);
  });
});

// Target kind: show the fields of the chosen kind.
document.querySelectorAll("[data-target-kind]").forEach((select) => {
  const show = () => document.querySelectorAll("[data-for-kind]").forEach((box) => {
    box.hidden = box.dataset.forKind !== select.value;
  });
  select.addEventListener("change", show);
  show();
});

// Graph diagram: nodes in layers by longest path from a root, edges as lines (SVG).
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}
function drawGraph(box, graph) {
  box.replaceChildren();
  if (!graph || !Array.isArray(graph.nodes)) { box.textContent = "no graph"; return; }
  const nodes = graph.nodes.slice(0, 200);
  const edges = (graph.edges || []).slice(0, 800);
  const ids = new Set(nodes.map((n) => n.id));
  const depth = {};
  nodes.forEach((n) => { depth[n.id] = 0; });
  for (let i = 0; i < nodes.length; i++) {
    edges.forEach((e) => {
      if (ids.has(e.source) && ids.has(e.target)) depth[e.target] = Math.max(depth[e.target], depth[e.source] + 1);
    });
  }
  const layers = {};
  nodes.forEach((n) => { (layers[depth[n.id]] = layers[depth[n.id]] || []).push(n); });
  const W = 150, H = 44, GX = 40, GY = 36, pos = {};
  let maxRow = 0;
  Object.entries(layers).forEach(([d, list]) => {
    maxRow = Math.max(maxRow, list.length);
    list.forEach((n, i) => { pos[n.id] = { x: 10 + Number(d) * (W + GX), y: 10 + i * (H + GY) }; });
  });
  const cols = Object.keys(layers).length;
  const width = cols * (W + GX) + 20, height = maxRow * (H + GY) + 20;
  // Drawn at its own size (never scaled up), narrower on a narrow screen.
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "graph" });
  edges.forEach((e) => {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) return;
    root.appendChild(svg("line", { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2, class: "edge" }));
    if (e.branch) root.appendChild(svg("text", { x: (a.x + W + b.x) / 2, y: (a.y + b.y + H) / 2 - 4, "text-anchor": "middle", class: "branch" }, e.branch));
  });
  nodes.forEach((n) => {
    const p = pos[n.id];
    const g = svg("g", { class: "node" });
    g.appendChild(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6 }));
    g.appendChild(svg("text", { x: p.x + 8, y: p.y + 18 }, String(n.id).slice(0, 20)));
    g.appendChild(svg("text", { x: p.x + 8, y: p.y + 35, class: "type" }, String(n.type).slice(0, 20)));
    root.appendChild(g);
  });
  box.appendChild(root);
}
document.querySelectorAll("[data-graph-source]").forEach((area) => {
  const box = area.closest("[data-for-kind]").querySelector("[data-graph-diagram]");
  const update = () => {
    try { drawGraph(box, JSON.parse(area.value || "null")); }
    catch (e) { box.textContent = "not JSON yet: " + e.message; }
  };
  area.addEventListener("input", update);
  update();
});
document.querySelectorAll("[data-graph-json]").forEach((pre) => {
  const box = pre.parentElement.querySelector("[data-graph-diagram]");
  if (box) drawGraph(box, JSON.parse(pre.textContent).graph);
});

// The trigger page: capture, dry run, live log.
const page = document.querySelector("[data-trigger]");
if (page) {
  const tid = page.dataset.trigger;
  const base = "/ui/triggers/" + tid;
  const samples = document.querySelector("[data-dry-events]");

  const captureButton = document.querySelector("[data-capture]");
  if (captureButton) {
    const state = document.querySelector("[data-capture-state]");
    const shown = document.querySelector("[data-captured]");
    captureButton.addEventListener("click", async () => {
      const { status, data } = await postJSON(base + "/capture", {});
      if (status !== 200) { state.textContent = detailText(data.detail); return; }
      state.textContent = "Listening for the next delivery…";
      captureButton.disabled = true;
      const poll = async () => {
        const r = await fetch(base + "/capture", { credentials: "same-origin" });
        const got = await r.json();
        if (got.event) {
          state.textContent = "Captured a test event (no run started). It is now the dry run's sample.";
          shown.textContent = JSON.stringify(got.event, null, 2);
          shown.hidden = false;
          samples.value = JSON.stringify([got.event], null, 2);
          captureButton.disabled = false;
        } else if (got.listening) {
          setTimeout(poll, 1000);
        } else {
          state.textContent = "Stopped listening: nothing arrived.";
          captureButton.disabled = false;
        }
      };
      poll();
    });
  }

  const result = document.querySelector("[data-dry-result]");
  document.querySelectorAll("[data-dry-run]").forEach((button) => {
    button.addEventListener("click", async () => {
      let body;
      if (button.dataset.dryRun === "last") {
        body = { last: Number(document.querySelector("[data-dry-last]").value) };
      } else {
        try { body = { events: JSON.parse(samples.value) }; }
        catch (e) { result.replaceChildren(el("p", { class: "error", role: "alert" }, "Sample events: not JSON (" + e.message + ")")); return; }
      }
      const { status, data } = await postJSON(base + "/dry-run", body);
      result.replaceChildren();
      if (status !== 200) { result.appendChild(el("pre", { class: "error", role: "alert" }, detailText(data.detail))); return; }
      data.results.forEach((r) => {
        const item = el("div", { class: "dry " + (r.would_start ? "yes" : "no") });
        item.appendChild(el("p", {}, `${r.event_id}: ${r.would_start ? "would start" : "would not start"} ${r.run_id} · condition ${r.condition.result}${r.condition.error ? " (" + r.condition.error + ")" : ""}`));
        if (r.input !== null && r.input !== undefined) item.appendChild(el("pre", {}, "input: " + JSON.stringify(r.input, null, 2)));
        if (r.graph) item.appendChild(el("pre", {}, "graph plan: " + JSON.stringify(r.graph, null, 2)));
        result.appendChild(item);
      });
    });
  });

  const live = document.querySelector("[data-live-state]");
  const log = document.querySelector("[data-log]");
  const rows = {};
  const source = new EventSource(base + "/live");
  source.addEventListener("open", () => { live.textContent = "Live: updating as events arrive."; });
  source.addEventListener("error", () => { live.textContent = "Reconnecting…"; });
  source.addEventListener("gone", () => { live.textContent = "This trigger is gone."; source.close(); });
  source.addEventListener("problem", (m) => {
    const p = document.querySelector("[data-status-problem]");
    p.textContent = JSON.parse(m.data).detail; p.hidden = false;
  });
  source.addEventListener("status", (m) => {
    const data = JSON.parse(m.data);
    document.querySelector("[data-status]").innerHTML = data.html;  // server-escaped HTML
    document.querySelector("[data-status-problem]").hidden = true;
    const badge = document.querySelector("[data-state]");
    badge.textContent = data.state; badge.className = "badge state-" + data.state;
  });
  source.addEventListener("log", (m) => {
    const e = JSON.parse(m.data);
    const row = el("tr", { "data-outcome": e.outcome });
    row.appendChild(el("td", { "data-label": "Time" }, e.time));
    row.appendChild(el("td", { "data-label": e.outcome === "dead-lettered" ? "Position" : "Event" }, e.event_id || "—"));
    row.appendChild(el("td", { "data-label": "Type" }, e.type || "—"));
    const outcome = el("td", { "data-label": "Outcome" });
    outcome.appendChild(el("span", { class: "badge outcome-" + e.outcome.replace(/ /g, "-") }, e.outcome));
    if (e.detail) outcome.appendChild(el("span", { class: "detail" }, " " + e.detail));
    row.appendChild(outcome);
    const run = el("td", { "data-label": "Run" });
    if (e.run_url) run.appendChild(el("a", { href: e.run_url, target: "_blank", rel: "noopener" }, e.run_id));
    else run.textContent = e.run_id || "—";
    row.appendChild(run);
    const key = e.row || e.key || "dup-" + Math.random();
    if (rows[key]) rows[key].replaceWith(row); else log.prepend(row);
    rows[key] = row;
    // A redriven dead letter's run link also goes to its row in the dead-letter list.
    if (e.row && e.row.startsWith("dead-letter:") && e.run_url) {
      const id = CSS.escape(e.row.slice("dead-letter:".length));
      const cell = document.querySelector(`[data-dead-letter="${id}"] [data-redriven]`);
      if (cell && !cell.querySelector("a")) {
        cell.replaceChildren("Redriven: ", el("a", { href: e.run_url, target: "_blank", rel: "noopener" }, e.run_id));
      }
    }
  });
}
