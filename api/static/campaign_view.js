// The campaign page: summary, cancel / resume, downloads, the confirmation stage (candidates and
// base retrained with fresh seeds: confirmed mean ± SE beside the search fitness), the search's
// fitness per generation, YOLOv5's evolve plot (each mutated hyperparameter against fitness),
// running trials and the trial table. It polls the REST JSON every 2 s and redraws what changed,
// so it follows a running campaign without a reload.
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
    confirmation: null, // GET /campaigns/{id}/confirmation
    dataKey: null, // what the last full load saw (status and counts)
    chartKey: null, // what the charts were last drawn from
    confirmKey: null, // what the confirmation panel was last drawn from
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
      const [trials, generations, confirmation] = await Promise.all([
        loadAllTrials(),
        Evolver.getJSON(`${base}/generations`),
        Evolver.getJSON(`${base}/confirmation`),
      ]);
      state.trials = trials;
      state.generations = generations;
      state.confirmation = confirmation;
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
    const confirmKey = JSON.stringify(state.confirmation);
    if (confirmKey !== state.confirmKey) {
      renderConfirmation(state.confirmation);
      state.confirmKey = confirmKey;
    }
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
      answerText(c, state.confirmation),
    ];
    if (c.error) parts.push(`error: ${c.error}`);
    document.getElementById("campaign-progress").textContent = parts.join(" · ");
    document.getElementById("cancel-button").disabled = !CANCELLABLE.has(c.status);
    document.getElementById("resume-button").disabled = !RESUMABLE.has(c.status);
    renderDownloads(c);
  }

  // The campaign's answer in the summary line: never the search's raw maximum as if it were final.
  function answerText(c, confirmation) {
    const winner = confirmation && confirmation.state === "confirmed" ? candidateOf(confirmation.winner) : null;
    if (winner) return `confirmed fitness ${meanSE(winner)} (${winner.label})`;
    return `search's best single trial ${formatFitness(c.best_fitness)} (not confirmed)`;
  }

  // Links to the API's paths (a.url and c.links are paths below the app's root) that open through
  // Evolver's fetch with the token: a file is saved, a trial's JSON opens in a new tab.
  function apiLink(path, props, open) {
    const onclick = (event) => {
      event.preventDefault();
      open().catch((err) => showMessage(`Cannot open ${path}: ${err.message}`, true));
    };
    return element("a", { ...props, href: Evolver.url(path), onclick });
  }

  function renderDownloads(c) {
    const links = c.links || {};
    const button = (path, name) =>
      apiLink(path, { className: "button", textContent: name, download: name }, () => Evolver.download(path, name));
    const items = [
      button(links.hyp_evolved || `${base}/hyp_evolved.yaml`, "hyp_evolved.yaml"),
      button(links.evolve_csv || `${base}/evolve.csv`, "evolve.csv"),
      ...(c.artefacts || []).map((a) => button(a.url, a.name)),
    ];
    document.getElementById("downloads").replaceChildren(...items);
  }

  // Epochs a trial of this stage trains: the confirmation may retrain at another length.
  function epochsOf(t) {
    const spec = (state.campaign && state.campaign.spec) || {};
    if (isSearch(t)) return spec.epochs ?? null;
    return (spec.confirm && spec.confirm.epochs) || spec.epochs || null;
  }

  // "generation 3", or for a retraining what it retrains ("retraining of trial 7" / "of the base").
  function trialRole(t) {
    if (isSearch(t)) return `generation ${t.generation}`;
    return t.parents.length ? `retraining of trial ${t.parents[0]}` : "retraining of the base";
  }

  function renderRunning() {
    const running = state.trials.filter((t) => t.status === "running");
    const items = running.map((t) => {
      const epochs = epochsOf(t);
      const epoch = t.current_epoch ?? t.epochs_done ?? 0;
      const bar = element("progress", { max: epochs || 1, value: epochs ? epoch : 0 });
      const where = [t.worker, t.gpu_id !== null && t.gpu_id !== undefined ? `gpu ${t.gpu_id}` : null]
        .filter(Boolean)
        .join(", ");
      return element(
        "li",
        { id: `running-${t.number}` },
        `trial ${t.number} (${trialRole(t)}) on ${where || "?"}: epoch ${epoch}/${epochs ?? "?"} `,
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
    stage: (t) => t.stage,
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

  function trialRow(t) {
    const status = element("td", {}, statusBadge(t.status));
    if (t.error) status.title = t.error;
    const path = `${base}/trials/${t.number}`;
    const number = apiLink(path, { textContent: t.number }, () => Evolver.openInTab(path));
    return element(
      "tr",
      { className: `trial status-${t.status}` },
      element("td", { className: "num" }, number),
      element("td", { className: "num" }, t.generation),
      element("td", { title: trialRole(t) }, isSearch(t) ? "search" : `confirm · ${t.split}`),
      status,
      element("td", { className: "num" }, formatFitness(t.fitness)),
      element("td", { title: t.node_ip || "" }, t.worker || "–"),
      element("td", { className: "num" }, formatDuration(duration(t))),
      element("td", { className: "num" }, `${t.epochs_done ?? 0}/${epochsOf(t) ?? "?"}`),
    );
  }

  function renderTable() {
    document.querySelector("#trials tbody").replaceChildren(...sortedTrials().map(trialRow));
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
  const isSearch = (t) => (t.stage || "search") === "search";
  // The search's finished trials: retrainings are scored on another split and shown in the
  // confirmation panel, never mixed into the search's charts.
  const scoredTrials = () => state.trials.filter((t) => isSearch(t) && FINISHED.has(t.status) && hasFitness(t));

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

  // ---- the confirmation stage -------------------------------------------------------------------

  const candidateOf = (label) =>
    ((state.confirmation && state.confirmation.candidates) || []).find((c) => c.label === label) || null;
  const present = (value) => value !== null && value !== undefined;
  const signed = (value, digits = 4) => (present(value) ? `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(digits)}` : "–");
  const meanSE = (c) =>
    present(c.mean) ? `${formatFitness(c.mean)} ± ${present(c.se) ? formatFitness(c.se) : "n/a"} (n=${c.n})` : "–";

  function retrainingsDone(confirmation) {
    const numbers = new Set(confirmation.candidates.flatMap((c) => c.trials));
    const finished = state.trials.filter((t) => numbers.has(t.number) && FINISHED.has(t.status)).length;
    return [finished, confirmation.candidates.reduce((sum, c) => sum + c.planned, 0)];
  }

  // The state in words: what the campaign's answer is, or why it has none yet.
  function stateText(cf) {
    const count = cf.candidates.length ? retrainingsDone(cf) : null;
    switch (cf.state) {
      case "off":
        return "Off (confirm: false): nothing is retrained; the campaign's figures are the search's raw maximum.";
      case "confirming":
        if (!count) {
          const topK = (state.campaign.spec.confirm || {}).top_k ?? "the";
          return `Confirming: once the search's last trial has finished, its best ${topK} candidates and the base ` +
            `are retrained with ${cf.seeds} fresh seed(s) each on the ${cf.split} split.`;
        }
        return `Confirming: ${count[0]} of ${count[1]} retrainings finished.`;
      case "confirmed": {
        const winner = candidateOf(cf.winner);
        if (!winner) return "Confirmed, but no retraining completed: there is no winner.";
        const gain = present(cf.difference_se) ? `, ${signed(cf.difference_se, 1)} SE against the base` : "";
        const who = winner.is_base ? "the base (the search did not beat it)" : winner.label;
        return `Confirmed: the winner is ${who}, fitness ${meanSE(winner)} over fresh seeds${gain}.`;
      }
      default:
        return "Not confirmed: the campaign ended before its retrainings finished.";
    }
  }

  function warningText(cf) {
    if (cf.state === "confirmed") return null;
    const best = state.campaign.best_fitness;
    const raw = present(best) ? ` (fitness ${formatFitness(best)})` : "";
    return `These figures are not confirmed: the search's best trial${raw} is one noisy training, scored on the ` +
      "split that selected it, so it is biased upward; it is not the campaign's answer.";
  }

  function figuresText(cf) {
    const where = cf.split_selected
      ? `${cf.split} split (the split that selected them: no unseen split)`
      : `${cf.split} split, unseen by the search`;
    const parts = [`${cf.seeds} fresh seed(s) × ${cf.epochs} epochs per candidate, scored on the ${where}`];
    if (present(cf.spearman)) parts.push(`rank agreement search vs confirmed (Spearman) ${signed(cf.spearman, 2)}`);
    if (present(cf.raw_best_optimism)) parts.push(`optimism of the search's best ${signed(cf.raw_best_optimism)}`);
    if (present(cf.cost_share)) parts.push(`retrainings: ${Math.round(cf.cost_share * 100)}% of the worker-seconds`);
    return cf.state === "off" ? "" : parts.join(" · ");
  }

  function renderConfirmation(cf) {
    if (!cf) return;
    const stateLine = document.getElementById("confirm-state");
    stateLine.textContent = stateText(cf);
    stateLine.className = `confirm-state state-${cf.state.replace(" ", "-")}`;
    const warning = warningText(cf);
    const warningLine = document.getElementById("confirm-warning");
    warningLine.textContent = warning || "";
    warningLine.hidden = !warning;
    document.getElementById("confirm-figures").textContent = figuresText(cf);
    const table = document.getElementById("confirm-table");
    const chart = document.getElementById("confirm-chart");
    table.hidden = chart.hidden = cf.candidates.length === 0;
    if (cf.candidates.length === 0) {
      Plotly.purge(chart);
      return;
    }
    table.querySelector("tbody").replaceChildren(...cf.candidates.map((c) => confirmRow(c, cf)));
    drawConfirmChart(cf);
  }

  function confirmRow(c, cf) {
    const winner = c.label === cf.winner;
    const label = element("td", {}, c.label, winner ? " · winner" : null);
    const trials = c.trials.length ? `${c.n}/${c.planned} (trials ${c.trials.join(", ")})` : `0/${c.planned}`;
    return element(
      "tr",
      { className: winner ? "winner" : "" },
      label,
      element("td", { className: "num" }, formatFitness(c.search_fitness)),
      element("td", { className: "num" }, meanSE(c)),
      element("td", { className: "num" }, trials),
      element("td", { className: "num", title: "search fitness − confirmed mean" }, signed(c.optimism)),
    );
  }

  // Per candidate (base first): the confirmed mean with ±SE error bars, each retraining as a dot,
  // and the search fitness beside it; the base's mean as a dotted line across.
  function drawConfirmChart(cf) {
    const cands = cf.candidates;
    const x = cands.map((_, i) => i);
    const colour = (c) => (c.label === cf.winner ? "#e45756" : c.is_base ? "#7f7f7f" : "#4c78a8");
    const seeds = cands.flatMap((c, i) => c.fitnesses.map((f) => [i - 0.18, f, c.label]));
    const data = [
      {
        name: "confirmed mean ± SE",
        type: "scatter",
        mode: "markers",
        x,
        y: cands.map((c) => c.mean),
        error_y: { type: "data", array: cands.map((c) => c.se ?? 0), visible: true, thickness: 2, width: 8 },
        text: cands.map((c) => plotText(`${c.label}: ${meanSE(c)}`)),
        hovertemplate: "%{text}<extra></extra>",
        marker: { size: 11, color: cands.map(colour) },
      },
      {
        name: "each retraining",
        type: "scatter",
        mode: "markers",
        x: seeds.map((s) => s[0]),
        y: seeds.map((s) => s[1]),
        text: seeds.map((s) => plotText(s[2])),
        hovertemplate: "%{text}: %{y:.4f}<extra></extra>",
        marker: { size: 5, color: "#9d9d9d", opacity: 0.8 },
      },
      {
        name: "search fitness (one draw)",
        type: "scatter",
        mode: "markers",
        x: x.map((i) => i + 0.22),
        y: cands.map((c) => c.search_fitness),
        text: cands.map((c) => plotText(c.label)),
        hovertemplate: "%{text}: search fitness %{y:.4f}<extra></extra>",
        marker: { size: 9, symbol: "diamond-open", color: "#f58518", line: { width: 2 } },
      },
    ];
    const shapes = present(cf.base_mean)
      ? [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: cf.base_mean, y1: cf.base_mean,
           line: { color: "#7f7f7f", dash: "dot", width: 1 } }]
      : [];
    const layout = {
      height: 300,
      margin: { l: 60, r: 20, t: 10, b: 40 },
      xaxis: { tickvals: x, ticktext: cands.map((c) => plotText(c.label === cf.winner ? `${c.label} ★` : c.label)),
               range: [-0.6, cands.length - 0.4], zeroline: false },
      yaxis: { title: { text: "fitness" } },
      shapes,
      hovermode: "closest",
      legend: { orientation: "h", y: 1.12 },
    };
    Plotly.react("confirm-chart", data, layout, PLOT_CONFIG);
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
