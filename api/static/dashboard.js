// Shared by the dashboard pages: calls to the REST API, the write token, polling, formatting.
// Plain browser JavaScript (no build step). Data is only ever written into the page as text
// (textContent), never as HTML, so nothing a client stored can run in someone else's browser.
"use strict";

const Evolver = (() => {
  const root = document.body.dataset.root || "";
  const TOKEN_KEY = "evolver.apiToken";

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const url = (path) => root + path;

  // The token lives in sessionStorage: it survives reloads of this tab, not the browser session.
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  function setToken(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  // FastAPI errors: {"detail": "text"} or {"detail": [{"loc": [...], "msg": "..."}]}.
  async function errorMessage(response) {
    let body;
    try {
      body = await response.json();
    } catch {
      return `${response.status} ${response.statusText}`;
    }
    const detail = body && body.detail;
    if (Array.isArray(detail)) {
      return detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("\n");
    }
    if (response.status === 401) return "This server needs an API token: paste it at the top right.";
    return typeof detail === "string" ? detail : JSON.stringify(body);
  }

  async function getJSON(path) {
    const response = await fetch(url(path), { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    return response.json();
  }

  // POST with the bearer token; `body` is a FormData, or any value sent as JSON.
  async function post(path, body) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(url(path), { method: "POST", headers, body: payload });
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    return response.json();
  }

  // Calls `tick` every `ms`, never two at once, skipping while the tab is hidden.
  function poll(tick, ms) {
    async function loop() {
      if (!document.hidden) {
        try {
          await tick();
        } catch (err) {
          console.error(err);
        }
      }
      setTimeout(loop, ms);
    }
    loop();
  }

  // element("td", {className: "x"}, "text", child, ...): a DOM node with text or node children.
  function element(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function statusBadge(status) {
    return element("span", { className: `badge status-${status}`, textContent: status });
  }

  const formatFitness = (value) => (value === null || value === undefined ? "–" : Number(value).toFixed(4));

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

  // The token box in the page header.
  function setUpTokenForm() {
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const state = document.getElementById("token-state");
    const show = () => {
      state.textContent = token() ? "token kept for this tab" : "";
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      input.value = "";
      show();
    });
    show();
  }

  document.addEventListener("DOMContentLoaded", setUpTokenForm);

  return { ApiError, url, getJSON, post, poll, element, statusBadge, formatFitness, formatDuration, formatTime };
})();
