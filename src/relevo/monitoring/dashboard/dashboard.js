// relevo dashboard: polls GET /v1/monitoring/summary and draws it with the vendored
// Chart.js (no CDN). The admin key, when the server needs one, is asked for once, kept
// in this tab's sessionStorage and sent as a Bearer token; the page itself holds no data.
"use strict";

(function () {
  const KEY = "relevo-admin-key";
  const REFRESH_MS = 5000;
  const COLORS = ["#3867d6", "#20bf6b", "#fa8231", "#8854d0", "#eb3b5a", "#0fb9b1", "#4b6584"];
  const charts = {};
  const state = { charts: charts, refreshed: 0, ready: false, error: null };
  window.relevoDashboard = state;

  const $ = (id) => document.getElementById(id);

  function headers() {
    const key = sessionStorage.getItem(KEY);
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function showLogin(message) {
    $("panels").hidden = true;
    $("login").hidden = false;
    $("forget").hidden = true;
    $("status").textContent = "admin key needed";
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
  }

  // The server says whether it has keys: without a key to send, asking would only
  // earn a 401 (and a console error); ask the person for the key instead.
  function keyNeeded() {
    const meta = document.querySelector('meta[name="relevo-auth"]');
    return meta !== null && meta.content === "required";
  }

  async function load() {
    if (keyNeeded() && sessionStorage.getItem(KEY) === null) {
      showLogin("");
      return;
    }
    let response;
    try {
      response = await fetch("/v1/monitoring/summary", { headers: headers() });
    } catch (failure) {
      $("status").textContent = "server unreachable";
      return;
    }
    if (response.status === 401 || response.status === 403) {
      const hadKey = sessionStorage.getItem(KEY) !== null;
      sessionStorage.removeItem(KEY);
      showLogin(hadKey ? "that key was refused" : "");
      return;
    }
    if (!response.ok) {
      $("status").textContent = "error " + response.status;
      return;
    }
    const summary = await response.json();
    $("login").hidden = true;
    $("panels").hidden = false;
    $("forget").hidden = sessionStorage.getItem(KEY) === null;
    render(summary);
    state.refreshed += 1;
    state.ready = true;
    $("status").textContent = "updated " + summary.at.slice(11, 19) + " UTC";
  }

  function labelsOf(minutes) {
    return minutes.map((m) => m.slice(11, 16));
  }

  function chart(id, config) {
    const existing = charts[id];
    if (existing) {
      existing.data.labels = config.data.labels;
      config.data.datasets.forEach((dataset, i) => {
        if (existing.data.datasets[i]) {
          existing.data.datasets[i].data = dataset.data;
          existing.data.datasets[i].label = dataset.label;
        } else {
          existing.data.datasets.push(dataset);
        }
      });
      existing.data.datasets.length = config.data.datasets.length;
      existing.update("none");
      return existing;
    }
    config.options = Object.assign(
      { responsive: true, animation: false, maintainAspectRatio: true, aspectRatio: 2 },
      config.options || {}
    );
    charts[id] = new Chart($(id), config);
    return charts[id];
  }

  function line(id, minutes, label, values, color) {
    chart(id, {
      type: "line",
      data: {
        labels: labelsOf(minutes),
        datasets: [{ label: label, data: values, borderColor: color, backgroundColor: color,
                     pointRadius: 1, tension: 0.2 }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
    });
  }

  function render(summary) {
    line("chart-events", summary.minutes, "events/s", summary.events_per_second, COLORS[0]);
    line("chart-decisions", summary.minutes, "decisions/s", summary.decisions_per_second, COLORS[1]);
    line("chart-fallback", summary.minutes, "fallback rate", summary.fallback_rate, COLORS[4]);
    chart("chart-latency", {
      type: "bar",
      data: {
        labels: summary.latency.map((r) => r.route),
        datasets: ["p50", "p95", "p99"].map((p, i) => ({
          label: p, data: summary.latency.map((r) => r[p + "_ms"]), backgroundColor: COLORS[i],
        })),
      },
      options: { indexAxis: "y" },
    });
    renderRules(summary.rules);
    renderExperiments(summary.experiments);
    renderDrift(summary.drift);
    renderKpis(summary.kpis);
    renderModels(summary.models);
  }

  function renderRules(rules) {
    const card = $("chart-rules").parentElement;
    card.querySelector(".empty").hidden = rules.length > 0;
    $("chart-rules").hidden = rules.length === 0;
    if (!rules.length) return;
    chart("chart-rules", {
      type: "bar",
      data: {
        labels: rules.map((r) => r.rule),
        datasets: [
          { label: "evaluations", data: rules.map((r) => r.evaluations), backgroundColor: COLORS[0] },
          { label: "fires", data: rules.map((r) => r.fires), backgroundColor: COLORS[1] },
          { label: "decisions shaped", data: rules.map((r) => r.decisions), backgroundColor: COLORS[3] },
          { label: "clicks", data: rules.map((r) => r.clicks), backgroundColor: COLORS[2] },
          { label: "errors", data: rules.map((r) => r.errors), backgroundColor: COLORS[4] },
        ],
      },
      options: { indexAxis: "y" },
    });
  }

  function renderExperiments(experiments) {
    const box = $("experiments");
    box.parentElement.querySelector(".empty").hidden = experiments.length > 0;
    experiments.forEach((experiment) => {
      const id = "chart-experiment-" + experiment.id.replace(/[^A-Za-z0-9_-]/g, "_");
      if (!$(id)) {
        const holder = document.createElement("div");
        holder.className = "experiment";
        const title = document.createElement("h3");
        title.textContent = experiment.id + " · " + (experiment.placement || "") +
          (experiment.srm && experiment.srm.flagged ? " · sample ratio mismatch!" : "");
        const canvas = document.createElement("canvas");
        canvas.id = id;
        box.appendChild(title);
        holder.appendChild(canvas);
        box.appendChild(holder);
      }
      const arms = experiment.arms;
      // Each KPI: the estimate as a bar, its 95 % interval as a floating bar.
      chart(id, {
        type: "bar",
        data: {
          labels: arms.map((a) => a.name + " (" + a.users + " users)"),
          datasets: [
            { label: "CTR", data: arms.map((a) => a.ctr.value || 0), backgroundColor: COLORS[0] },
            { label: "CTR 95% interval",
              data: arms.map((a) => [a.ctr.ci_low || 0, a.ctr.ci_high || 0]),
              backgroundColor: "rgba(56,103,214,.25)" },
            { label: "conversion", data: arms.map((a) => a.conversion_rate.value || 0),
              backgroundColor: COLORS[2] },
            { label: "conversion 95% interval",
              data: arms.map((a) => [a.conversion_rate.ci_low || 0, a.conversion_rate.ci_high || 0]),
              backgroundColor: "rgba(250,130,49,.25)" },
          ],
        },
        options: { scales: { y: { beginAtZero: true } } },
      });
    });
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
  }

  function number(value) {
    return value === null || value === undefined ? "" : Number(value).toPrecision(3);
  }

  function fill(tableId, rows, columns) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren();
    rows.forEach((entry) => {
      const row = document.createElement("tr");
      columns(entry).forEach(([text, className]) => cell(row, text, className));
      body.appendChild(row);
    });
  }

  function renderDrift(drift) {
    const reference = drift.reference;
    $("drift-summary").textContent = reference
      ? "status " + drift.status + " · reference " + reference.id + " (" + reference.source +
        ") · windows of " + drift.window_size + " values · " + drift.alerts + " alerts"
      : "no reference yet: train a model or capture a baseline (relevo monitoring baseline)";
    fill("drift", drift.features, (f) => [
      [f.feature], [f.test], [number(f.statistic)], [number(f.p_value)], [number(f.psi)],
      [f.status || "pending (" + f.pending + " values)", "status-" + (f.status || "none")],
      [f.windows],
    ]);
  }

  function renderKpis(kpis) {
    fill("kpis", kpis, (k) => [
      [k.placement], [k.kpi], [number(k.rate)], [number(k.baseline_rate)], [number(k.z)],
      [k.exposures], [k.status, "status-" + k.status],
    ]);
  }

  function renderModels(models) {
    if (!models.length) {
      fill("models", [null], () => [["no model trained yet (relevo train)", "muted"]]);
      return;
    }
    fill("models", models, (m) => [
      [m.name], [(m.active ? "* " : "") + m.version], [m.kind], [(m.created_at || "").slice(0, 19)],
      [Object.entries(m.metrics || {})
        .filter(([, v]) => typeof v === "number")
        .map(([k, v]) => k + " " + Number(v).toPrecision(3)).join(", ")],
    ]);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key").value.trim());
      $("key").value = "";
      load();
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showLogin("");
    });
    load();
    setInterval(() => { if (!$("panels").hidden) load(); }, REFRESH_MS);
  });
})();
