// The campaign list page: every campaign with its progress, refreshed every 2 s, and a form that
// submits a new campaign (YAML or JSON text, or files) to POST /campaigns.
"use strict";

(() => {
  const { element, statusBadge, formatFitness, formatTime } = Evolver;
  const POLL_MS = 2000;

  function progressCell(c) {
    const total = c.trials_total || 0;
    const bar = element("progress", { max: Math.max(total, 1), value: c.trials_finished || 0 });
    return element("td", {}, bar, ` ${c.trials_finished}/${total}`);
  }

  function campaignRow(c) {
    const link = element("a", { href: Evolver.url(`/campaigns/${c.id}/view`), textContent: c.name });
    return element(
      "tr",
      { id: `campaign-${c.id}` },
      element("td", {}, c.id),
      element("td", {}, link),
      element("td", {}, statusBadge(c.status)),
      progressCell(c),
      element("td", {}, c.trials_running),
      element("td", { className: "num" }, formatFitness(c.best_fitness)),
      element("td", {}, formatTime(c.created_at)),
    );
  }

  async function refresh() {
    const error = document.getElementById("list-error");
    try {
      const campaigns = await Evolver.getJSON("/campaigns");
      const rows = campaigns.length
        ? campaigns.map(campaignRow)
        : [element("tr", {}, element("td", { colSpan: 7, className: "muted" }, "no campaigns yet"))];
      document.querySelector("#campaigns tbody").replaceChildren(...rows);
      error.hidden = true;
    } catch (err) {
      error.textContent = `Cannot load campaigns: ${err.message}`;
      error.hidden = false;
    }
  }

  // JSON text goes as JSON; anything else (or files) as multipart with `spec` (and `hyp`).
  function submission() {
    const text = document.getElementById("spec-text").value.trim();
    const specFile = document.getElementById("spec-file").files[0];
    const hypFile = document.getElementById("hyp-file").files[0];
    if (!specFile && !text) throw new Error("Paste a campaign or choose a campaign file first.");
    if (!specFile && !hypFile) {
      try {
        return JSON.parse(text);
      } catch {
        // not JSON: YAML, sent as a file below
      }
    }
    const form = new FormData();
    if (specFile) form.append("spec", specFile, specFile.name);
    else form.append("spec", new Blob([text], { type: "application/yaml" }), "campaign.yaml");
    if (hypFile) form.append("hyp", hypFile, hypFile.name);
    return form;
  }

  async function submit(event) {
    event.preventDefault();
    const result = document.getElementById("submit-result");
    const button = document.getElementById("submit-button");
    result.hidden = false;
    result.className = "result";
    button.disabled = true;
    try {
      const created = await Evolver.post("/campaigns", submission());
      result.replaceChildren(
        `Campaign ${created.id} (${created.name}) created: `,
        element("a", { href: Evolver.url(`/campaigns/${created.id}/view`), textContent: "open it" }),
      );
      await refresh();
    } catch (err) {
      result.className = "result error";
      result.textContent = err.status ? `Rejected (${err.status}):\n${err.message}` : err.message;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("submit-form").addEventListener("submit", submit);
    Evolver.poll(refresh, POLL_MS);
  });
})();
