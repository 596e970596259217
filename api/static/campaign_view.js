// The campaign page: summary, cancel / resume, downloads, fitness per generation, YOLOv5's
// evolve plot (each mutated hyperparameter against fitness), running trials and the trial table.
// It polls the REST JSON every 2 s and redraws what changed, so it follows a running campaign
// without a reload.
"use strict";

(() => {
  const { element, statusBadge, formatFitness, formatDuration } = Evolver;
  const POLL_MS = 2000;
  const PAGE_SIZE = 1000; // trials per request when loading the whole list (the API allows up to 1000)
  const FINISHED = new Set(["completed", "failed", "pruned", "cancelled"]);
  const CANCELLABLE = new Set(["queued", "running"]);
  const RESUMABLE = new Set(["cancelled", "failed"]);
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  const campaignId = Number(document.body.dataset.campaignId);
  const base = `/campaigns/${campaignId}`;

  const state = {
    campaign: null,
    trials: [], // every trial, by number
    generations: [],
    dataKey: null, // what the last full load saw (status and counts)
    chartKey: null, // what the charts were last drawn from
    loadFailed: false, // the last poll failed (its message is showing)
    sort: { key: "number", direction: 1 },
  };

  // ---- loading ---------------------------------------------------------------------------------

  async function loadAllTrials() {
    const trials = [];
    for (;;) {
      const page = await Evolver.getJSON(`${base}/trials?sort=number&limit=${PAGE_SIZE}&offset=${trials.length}`);
      trials.push(...page.items);
      if (page.items.length === 0 || trials.length >= page.total) return trials;
    }
  }

  // Running trials change (their epoch) without any count changing: refresh only those.
  async function refreshRunning() {
    const page = await Evolver.getJSON(`${base}/trials?status=running&sort=number&limit=${PAGE_SIZE}`);
    const byNumber = new Map(page.items.map((t) => [t.number, t]));
    state.trials = state.trials.map((t) => byNumber.get(t.number) || t);
  }

  async function tick() {
    let campaign;
    try {
      campaign = await Evolver.getJSON(base);
    } catch (err) {
      showMessage(err.status === 404 ? `Campaign ${campaignId} does not exist.` : `Cannot load: ${err.message}`, true);
      state.loadFailed = true;
      return;
    }
    if (state.loadFailed) document.getElementById("message").hidden = true; // the server is back
    state.loadFailed = false;
    state.campaign = campaign;
    const { status, counts, trials_finished: finished, trials_running: running } = campaign;
    const dataKey = JSON.stringify([status, counts, finished, running]);
    if (dataKey !== state.dataKey) {
      const [trials, generations] = await Promise.all([loadAllTrials(), Evolver.getJSON(`${base}/generations`)]);
      state.trials = trials;
      state.generations = generations;
      state.dataKey = dataKey;
    } else if (campaign.trials_running > 0) {
      await refreshRunning();
    }
    render();
  }

  // ---- rendering -------------------------------------------------------------------------------

  function render() {
    renderSummary(state.campaign);
    renderRunning();
    renderTable();
    const scored = scoredTrials();
    const chartKey = `${scored.length}:${state.generations.length}`;
    if (chartKey !== state.chartKey) {
      const keys = mutatedKeys(scored);
      drawFitnessChart(scored, state.generations, keys);
      drawEvolvePlots(scored, keys);
      state.chartKey = chartKey;
    }
  }

  function renderSummary(c) {
    document.title = `${c.name} · Evolver`;
    document.getElementById("campaign-name").textContent = `${c.name} (#${c.id})`;
    document.getElementById("campaign-status").replaceWith(
      Object.assign(statusBadge(c.status), { id: "campaign-status" }),
    );
    const generations = state.generations.length;
    const parts = [
      `${c.trials_finished}/${c.trials_total} trials finished`,
      `${c.trials_running} running`,
      `${generations} generation${generations === 1 ? "" : "s"} closed`,
      `best fitness ${formatFitness(c.best_fitness)}`,
    ];
    if (c.error) parts.push(`error: ${c.error}`);
    document.getElementById("campaign-progress").textContent = parts.join(" · ");
    document.getElementById("cancel-button").disabled = !CANCELLABLE.has(c.status);
    document.getElementById("resume-button").disabled = !RESUMABLE.has(c.status);
    renderDownloads(c);
  }

  function renderDownloads(c) {
    const links = c.links || {};
    const button = (href, text) => element("a", { className: "button", href, textContent: text, download: "" });
    const items = [
      button(links.hyp_evolved || Evolver.url(`${base}/hyp_evolved.yaml`), "hyp_evolved.yaml"),
      button(links.evolve_csv || Evolver.url(`${base}/evolve.csv`), "evolve.csv"),
      ...(c.artefacts || []).map((a) => button(a.url, a.name)),
    ];
    document.getElementById("downloads").replaceChildren(...items);
  }

  function renderRunning() {
    const epochs = (state.campaign.spec && state.campaign.spec.epochs) || null;
    const running = state.trials.filter((t) => t.status === "running");
    const items = running.map((t) => {
      const epoch = t.current_epoch ?? t.epochs_done ?? 0;
      const bar = element("progress", { max: epochs || 1, value: epochs ? epoch : 0 });
      const where = [t.worker, t.gpu_id !== null && t.gpu_id !== undefined ? `gpu ${t.gpu_id}` : null]
        .filter(Boolean)
        .join(", ");
      return element(
        "li",
        { id: `running-${t.number}` },
        `trial ${t.number} (generation ${t.generation}) on ${where || "?"}: epoch ${epoch}/${epochs ?? "?"} `,
        bar,
      );
    });
    const list = document.getElementById("running-trials");
    list.replaceChildren(...(items.length ? items : [element("li", { className: "muted" }, "none")]));
  }

  // ---- the trial table -------------------------------------------------------------------------

  const SORT_VALUES = {
    number: (t) => t.number,
    generation: (t) => t.generation,
    status: (t) => t.status,
    fitness: (t) => t.fitness,
    worker: (t) => t.worker,
    duration: (t) => duration(t),
    epochs: (t) => t.epochs_done,
  };

  // Elapsed time for a trial still running, its recorded duration otherwise.
  function duration(t) {
    if (t.duration_seconds !== null && t.duration_seconds !== undefined) return t.duration_seconds;
    if (t.status === "running" && t.started_at) return Math.max(0, (Date.now() - Date.parse(t.started_at)) / 1000);
    return null;
  }

  // Missing values sort last in both directions; ties keep trial order.
  function sortedTrials() {
    const { key, direction } = state.sort;
    const value = SORT_VALUES[key];
    return [...state.trials].sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      const missingA = va === null || va === undefined;
      const missingB = vb === null || vb === undefined;
      if (missingA || missingB) return missingA === missingB ? a.number - b.number : missingA ? 1 : -1;
      const order = typeof va === "string" ? va.localeCompare(vb) : va - vb;
      return order !== 0 ? direction * order : a.number - b.number;
    });
  }

  function trialRow(t, epochs) {
    const status = element("td", {}, statusBadge(t.status));
    if (t.error) status.title = t.error;
    const number = element("a", { href: Evolver.url(`${base}/trials/${t.number}`), textContent: t.number });
    return element(
      "tr",
      { className: `trial status-${t.status}` },
      element("td", { className: "num" }, number),
      element("td", { className: "num" }, t.generation),
      status,
      element("td", { className: "num" }, formatFitness(t.fitness)),
      element("td", { title: t.node_ip || "" }, t.worker || "–"),
      element("td", { className: "num" }, formatDuration(duration(t))),
      element("td", { className: "num" }, `${t.epochs_done ?? 0}/${epochs ?? "?"}`),
    );
  }

  function renderTable() {
    const epochs = state.campaign.spec && state.campaign.spec.epochs;
    document.querySelector("#trials tbody").replaceChildren(...sortedTrials().map((t) => trialRow(t, epochs)));
    for (const th of document.querySelectorAll("#trials th[data-key]")) {
      if (th.dataset.key !== state.sort.key) th.removeAttribute("aria-sort");
      else th.setAttribute("aria-sort", state.sort.direction > 0 ? "ascending" : "descending");
    }
  }

  function onHeaderClick(event) {
    const th = event.target.closest("th[data-key]");
    if (!th) return;
    const key = th.dataset.key;
    if (state.sort.key === key) state.sort.direction = -state.sort.direction;
    else state.sort = { key, direction: key === "fitness" ? -1 : 1 }; // best first
    if (state.campaign) renderTable();
  }

  // ---- charts ----------------------------------------------------------------------------------

  const hasFitness = (t) => t.fitness !== null && t.fitness !== undefined;
  const scoredTrials = () => state.trials.filter((t) => FINISHED.has(t.status) && hasFitness(t));

  // The hyperparameters the search changed: those whose value differs between trials.
  function mutatedKeys(trials) {
    if (trials.length === 0) return [];
    const first = trials[0].hyp;
    return Object.keys(first).filter((k) => trials.some((t) => t.hyp[k] !== first[k]));
  }

  const bestOf = (trials) => trials.reduce((best, t) => (t.fitness > best.fitness ? t : best), trials[0]);

  // Plotly reads a few HTML tags in its text (we use <br>): escape whatever came from the server.
  const plotText = (value) => String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

  function hoverText(t, keys) {
    const lines = [`trial ${t.number}, generation ${t.generation}`, `fitness ${formatFitness(t.fitness)}`];
    for (const k of keys.length ? keys : Object.keys(t.hyp)) lines.push(`${k}: ${t.hyp[k]}`);
    return lines.map(plotText).join("<br>");
  }

  function drawFitnessChart(scored, generations, keys) {
    const closed = generations.filter((g) => g.best_fitness !== null);
    const lastGeneration = Math.max(0, ...scored.map((t) => t.generation), ...generations.map((g) => g.index));
    const data = [
      {
        name: "trials",
        type: "scatter",
        mode: "markers",
        x: scored.map((t) => t.generation),
        y: scored.map((t) => t.fitness),
        text: scored.map((t) => hoverText(t, keys)),
        customdata: scored.map((t) => t.number),
        hovertemplate: "%{text}<extra></extra>",
        marker: { size: 7, opacity: 0.55, color: "#4c78a8" },
      },
      {
        name: "best",
        type: "scatter",
        mode: "lines+markers",
        x: closed.map((g) => g.index),
        y: closed.map((g) => g.best_fitness),
        line: { color: "#e45756" },
      },
      {
        name: "mean",
        type: "scatter",
        mode: "lines",
        x: closed.map((g) => g.index),
        y: closed.map((g) => g.mean_fitness),
        line: { color: "#54a24b", dash: "dot" },
      },
    ];
    const layout = {
      height: 360,
      margin: { l: 60, r: 20, t: 10, b: 45 },
      // half a generation of margin on both sides, so the first and last columns of points show whole
      xaxis: {
        title: { text: "generation" },
        range: [-0.5, lastGeneration + 0.5],
        zeroline: false,
        dtick: lastGeneration > 20 ? undefined : 1,
      },
      yaxis: { title: { text: "fitness" } },
      hovermode: "closest",
      legend: { orientation: "h", y: 1.08 },
    };
    Plotly.react("fitness-chart", data, layout, PLOT_CONFIG);
  }

  // YOLOv5's evolve plot: per mutated hyperparameter, value against fitness, the best starred.
  function drawEvolvePlots(scored, keys) {
    const grid = document.getElementById("evolve-grid");
    const kept = new Map([...grid.querySelectorAll(".evolve-chart")].map((div) => [div.dataset.key, div]));
    const divs = keys.map((k) => kept.get(k) || element("div", { className: "evolve-chart" }));
    keys.forEach((k, i) => {
      divs[i].dataset.key = k;
      kept.delete(k);
    });
    for (const gone of kept.values()) Plotly.purge(gone);
    const none = element("p", { className: "muted" }, "no hyperparameter has changed yet");
    grid.replaceChildren(...(divs.length ? divs : [none]));
    if (!keys.length) return;
    const best = bestOf(scored);
    keys.forEach((k, i) => {
      const data = [
        {
          type: "scatter",
          mode: "markers",
          x: scored.map((t) => t.hyp[k]),
          y: scored.map((t) => t.fitness),
          text: scored.map((t) => `trial ${t.number}`),
          hovertemplate: `%{text}<br>${plotText(k)} %{x}<br>fitness %{y:.4f}<extra></extra>`,
          marker: { size: 5, color: scored.map((t) => t.fitness), colorscale: "Viridis", opacity: 0.7 },
        },
        {
          type: "scatter",
          mode: "markers",
          x: [best.hyp[k]],
          y: [best.fitness],
          hovertemplate: `best: trial ${best.number}<br>${plotText(k)} %{x}<extra></extra>`,
          marker: { symbol: "star", size: 14, color: "#e45756", line: { color: "#000", width: 1 } },
        },
      ];
      const layout = {
        height: 190,
        margin: { l: 40, r: 10, t: 28, b: 28 },
        title: { text: plotText(`${k} = ${best.hyp[k]}`), font: { size: 12 } },
        showlegend: false,
        xaxis: { tickfont: { size: 9 } },
        yaxis: { tickfont: { size: 9 } },
      };
      Plotly.react(divs[i], data, layout, { ...PLOT_CONFIG, displayModeBar: false });
    });
  }

  // ---- actions ---------------------------------------------------------------------------------

  function showMessage(text, isError = false) {
    const message = document.getElementById("message");
    message.textContent = text;
    message.className = isError ? "result error" : "result";
    message.hidden = false;
  }

  async function act(action, button) {
    button.disabled = true;
    try {
      const campaign = await Evolver.post(`${base}/${action}`);
      showMessage(action === "cancel" ? "Campaign cancelled." : "Campaign resumed.");
      state.campaign = campaign;
      state.dataKey = null; // reload everything on the next tick
      await tick();
    } catch (err) {
      showMessage(`${action} failed: ${err.message}`, true);
      if (state.campaign) renderSummary(state.campaign);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelector("#trials thead").addEventListener("click", onHeaderClick);
    const cancel = document.getElementById("cancel-button");
    const resume = document.getElementById("resume-button");
    cancel.addEventListener("click", () => act("cancel", cancel));
    resume.addEventListener("click", () => act("resume", resume));
    Evolver.poll(tick, POLL_MS);
  });
})();
