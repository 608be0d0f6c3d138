// The live floor page: draws /api/events' state as it arrives (server-sent events).
// No build step, no libraries. Every text from the server goes in with textContent,
// never as HTML. Countdowns tick here between pushes, from the server's clock.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const CELL_W = 150, CELL_H = 92, GAP = 18, PAD = 10;
  let source = null;
  let clockOffset = 0; // server time - browser time, seconds
  let tz = "UTC";

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return `${Math.round(value * 1000)} ms`;
    if (value < 120) return `${value.toFixed(1)} s`;
    return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
  }

  function shade(n, most) {
    if (n <= 0) return "#ffffff";
    const t = Math.min(1, n / Math.max(most, 4));
    // white -> #08519c, through #9ecae1
    const mix = (a, b, f) => Math.round(a + (b - a) * f);
    const [r, g, b] = t < 0.5
      ? [mix(222, 158, t * 2), mix(235, 202, t * 2), mix(247, 225, t * 2)]
      : [mix(158, 8, (t - 0.5) * 2), mix(202, 81, (t - 0.5) * 2), mix(225, 156, (t - 0.5) * 2)];
    return `rgb(${r},${g},${b})`;
  }

  function initials(name) {
    return name.split(/\s+/).filter(Boolean).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
  }

  // ------------------------------------------------------------------ the floor

  function drawFloor(state) {
    const floor = $("floor");
    const width = PAD * 2 + state.grid.cols * (CELL_W + GAP) - GAP;
    const height = PAD * 2 + state.grid.rows * (CELL_H + GAP) - GAP;
    floor.setAttribute("viewBox", `0 0 ${Math.max(width, 1)} ${Math.max(height, 1)}`);
    floor.replaceChildren();
    const at = {};
    for (const z of state.zones) {
      at[z.id] = { x: PAD + z.x * (CELL_W + GAP), y: PAD + z.y * (CELL_H + GAP) };
    }
    for (const [a, b] of state.edges) {
      const p = at[a], q = at[b];
      floor.appendChild(svg("line", {
        class: "edge", x1: p.x + CELL_W / 2, y1: p.y + CELL_H / 2, x2: q.x + CELL_W / 2, y2: q.y + CELL_H / 2,
      }));
    }
    const most = Math.max(0, ...state.zones.map((z) => z.shoppers));
    const staffIn = {};
    for (const b of state.bands) if (b.zone) (staffIn[b.zone] = staffIn[b.zone] || []).push(b);
    for (const z of state.zones) {
      const { x, y } = at[z.id];
      const g = svg("g", { class: "zone", "data-zone": z.id, "data-shoppers": z.shoppers });
      g.appendChild(svg("title", {}, `${z.id}: ${z.shoppers} shopper(s); ${z.tags.join(", ")}`));
      g.appendChild(svg("rect", { x, y, width: CELL_W, height: CELL_H, fill: shade(z.shoppers, most) }));
      const dark = z.shoppers > 0 && z.shoppers / Math.max(most, 4) > 0.55;
      const ink = dark ? "#ffffff" : "#1d2733";
      g.appendChild(svg("text", { x: x + 8, y: y + 20, fill: ink }, z.id));
      g.appendChild(svg("text", { x: x + 8, y: y + 48, class: "count", fill: ink }, z.shoppers));
      g.appendChild(svg("text", { x: x + 8 + String(z.shoppers).length * 15 + 6, y: y + 48, fill: ink },
        z.shoppers === 1 ? "shopper" : "shoppers"));
      (staffIn[z.id] || []).forEach((b, k) => {
        const cls = ["band", b.alerts.length ? "alerted" : "", b.online ? "" : "offline"].join(" ").trim();
        const dot = svg("g", { class: cls, "data-band": b.band });
        const cx = x + 18 + k * 28, cy = y + CELL_H - 18;
        dot.appendChild(svg("title", {}, `${b.name} (${b.role})${b.alerts.length ? `, ${b.alerts.length} open alert(s)` : ""}`));
        dot.appendChild(svg("circle", { cx, cy, r: 12 }));
        dot.appendChild(svg("text", { x: cx, y: cy }, initials(b.name)));
        g.appendChild(dot);
      });
      floor.appendChild(g);
    }
  }

  // ------------------------------------------------------------------ alerts

  function who(people) {
    return people.map((p) => p.name).join(" → ") || "nobody (no staff available)";
  }

  const SHOWN_ANSWERED = 6; // the latest few handled / unanswered alerts; all open ones

  function alertItem(a) {
    const li = el("li", { class: a.state, "data-alert": a.id, "data-rule": a.rule, "data-zone": a.zone });
    const head = el("div", { class: "alert-head" });
    head.append(el("span", { class: "rule" }, a.rule), el("span", { class: "zone" }, a.zone || "(no zone)"),
      el("span", { class: "priority" }, a.priority),
      el("span", { class: "step", "data-step": a.step }, `step ${a.step} of ${a.steps}`));
    li.appendChild(head);
    li.appendChild(el("div", { class: "alert-msg" }, a.message));
    li.appendChild(el("div", { class: "alert-who" }, `paged: ${who(a.paged)}`));
    const when = el("div", { class: "alert-when" });
    if (a.state === "open" && a.next_escalation) {
      when.append("next escalation in ",
        el("span", { class: "countdown", "data-due": a.next_escalation.ts }, seconds(a.next_escalation.in_s)),
        ` (${a.next_escalation.at.slice(11, 19)})`);
    } else if (a.state === "open" && a.unanswered_at) {
      when.append("last step; unanswered in ",
        el("span", { class: "countdown", "data-due": a.unanswered_at.ts }, seconds(a.unanswered_at.in_s)));
    } else if (a.state === "acknowledged") {
      const late = a.target_s !== null && a.response_s > a.target_s;
      when.textContent = `${a.acked_by ? a.acked_by.name : "someone"} is on it, answered after ` +
        `${seconds(a.response_s)}${a.target_s !== null ? ` (target ${seconds(a.target_s)}${late ? ", late" : ""})` : ""}`;
    } else if (a.state === "unanswered") {
      when.textContent = `nobody answered; raised ${seconds(a.age_s)} ago, paged ${who(a.paged)}`;
    }
    li.appendChild(when);
    return li;
  }

  function fill(listId, countId, alerts, limit) {
    const shown = limit === undefined ? alerts : alerts.slice(-limit).reverse(); // newest first
    $(listId).replaceChildren(...shown.map(alertItem));
    if (countId) {
      $(countId).textContent = alerts.length > shown.length
        ? `(latest ${shown.length} of ${alerts.length})` : `(${alerts.length})`;
    }
  }

  function drawAlerts(state) {
    const by = (s) => state.alerts.filter((a) => a.state === s);
    const open = by("open");
    $("alert-count").textContent = open.length;
    $("no-alerts").hidden = open.length > 0;
    fill("alerts", null, open);
    fill("handled", "handled-count", by("acknowledged"), SHOWN_ANSWERED);
    fill("unanswered", "unanswered-count", by("unanswered"), SHOWN_ANSWERED);
  }

  function tick() {
    const now = Date.now() / 1000 + clockOffset;
    for (const node of document.querySelectorAll(".countdown[data-due]")) {
      node.textContent = seconds(Math.max(0, Number(node.dataset.due) - now));
    }
    try {
      $("clock").textContent = new Date(now * 1000).toLocaleTimeString("en-GB", { timeZone: tz });
    } catch (e) {
      $("clock").textContent = new Date(now * 1000).toISOString().slice(11, 19) + " UTC";
    }
  }

  // ------------------------------------------------------------------ staff and numbers

  function drawStaff(state) {
    const body = $("staff").tBodies[0];
    body.replaceChildren();
    for (const b of state.bands) {
      const tr = el("tr", { "data-band": b.band });
      const alerts = b.alerts.length ? `${b.alerts.length} open` : (b.on ? "on one" : "");
      tr.append(el("td", {}, b.name), el("td", {}, b.role),
        el("td", {}, b.online ? (b.zone || "not seen lately") : "offline"), el("td", {}, alerts));
      body.appendChild(tr);
    }
  }

  function drawNumbers(state) {
    const c = state.counters;
    const since = c.today_since.slice(11, 16);
    const rows = [
      ["shoppers on the floor", c.shoppers],
      ["open alerts", c.open_alerts],
      [`coupons issued (since ${since})`, c.coupons_issued_today],
      [`coupons redeemed (since ${since})`, c.coupons_redeemed_today],
      ["decision latency, device → publish, p50 / p99", `${seconds(c.decision_latency_p50_s)} / ${seconds(c.decision_latency_p99_s)}`],
      ["arrival → publish (the engine's share) p50 / p99", `${seconds(c.arrival_latency_p50_s)} / ${seconds(c.arrival_latency_p99_s)}`],
      ["dead letters", c.deadletters + (c.deadletters ? ` (${Object.entries(c.deadletters_by_reason).map(([k, v]) => `${k} ${v}`).join(", ")})` : "")],
    ];
    const dl = $("counters");
    dl.replaceChildren();
    for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, v));
    const body = $("responses").tBodies[0];
    body.replaceChildren();
    for (const r of state.responses) {
      const tr = el("tr", { "data-rule": r.rule });
      const late = r.target_s !== null && r.worst_s !== null && r.worst_s > r.target_s;
      tr.append(el("td", {}, r.rule), el("td", { class: "num" }, r.answered),
        el("td", { class: "num" }, seconds(r.median_s)), el("td", { class: late ? "num late" : "num" }, seconds(r.worst_s)),
        el("td", { class: "num" }, r.target_s === null ? "–" : seconds(r.target_s)),
        el("td", { class: "num" }, r.answered ? `${Math.round((100 * r.within) / r.answered)} %` : "–"),
        el("td", { class: "num" }, r.unanswered));
      body.appendChild(tr);
    }
    if (!state.responses.length) {
      const tr = el("tr");
      tr.appendChild(el("td", { colspan: 7, class: "quiet" }, "no answers yet"));
      body.appendChild(tr);
    }
  }

  function draw(state) {
    clockOffset = state.now - Date.now() / 1000;
    tz = state.timezone;
    $("store-name").textContent = state.store;
    document.title = `Floorwalker · ${state.store}`;
    drawFloor(state);
    drawAlerts(state);
    drawStaff(state);
    drawNumbers(state);
    document.body.dataset.version = state.version;
    tick();
  }

  // ------------------------------------------------------------------ wiring

  function connect(store) {
    if (source) source.close();
    const live = $("live");
    source = new EventSource(`/api/events?store=${encodeURIComponent(store)}`);
    source.addEventListener("state", (ev) => {
      live.textContent = "live";
      live.className = "live";
      draw(JSON.parse(ev.data));
    });
    source.onerror = () => {
      live.textContent = "reconnecting…";
      live.className = "live wait";
    };
  }

  async function start() {
    const response = await fetch("/api/stores", { credentials: "same-origin" });
    if (!response.ok) {
      $("live").textContent = `error ${response.status}`;
      return;
    }
    const stores = (await response.json()).stores.map((s) => s.store);
    const wanted = new URLSearchParams(location.search).get("store");
    const store = stores.includes(wanted) ? wanted : stores[0];
    const picker = $("store-picker");
    picker.replaceChildren(...stores.map((s) => el("option", { value: s }, s)));
    picker.value = store;
    $("picker").hidden = stores.length < 2;
    picker.addEventListener("change", () => {
      history.replaceState(null, "", `?store=${encodeURIComponent(picker.value)}`);
      connect(picker.value);
    });
    if (store) connect(store);
    setInterval(tick, 200);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
