// Shared by the dashboard pages: calls to the REST API with the token, the token prompt,
// downloads, polling, formatting.
// Plain browser JavaScript (no build step). Data is only ever written into the page as text
// (textContent), never as HTML, so nothing a client stored can run in someone else's browser.
"use strict";

const Evolver = (() => {
  const root = document.body.dataset.root || "";
  const TOKEN_KEY = "evolver.apiToken";
  const TOKEN_GIVEN = "evolver:token"; // event on document once the prompt got a token

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
    if (response.status === 401) return "This server needs its API token: enter it above.";
    return typeof detail === "string" ? detail : JSON.stringify(body);
  }

  // Every call to the API goes through here: it carries the tab's token (when it has one), and a
  // 401 shows the token prompt. A 401 to a request sent before the token changed is stale: ignored.
  async function request(path, init = {}) {
    const sent = token();
    const headers = { ...(init.headers || {}) };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    const response = await fetch(url(path), { ...init, headers });
    if (response.status === 401 && token() === sent) askForToken(sent !== "");
    if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
    return response;
  }

  async function getJSON(path) {
    const response = await request(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    return response.json();
  }

  // `body` is a FormData, or any value sent as JSON.
  async function post(path, body) {
    const headers = { Accept: "application/json" };
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await request(path, { method: "POST", headers, body: payload });
    return response.json();
  }

  // A plain link cannot carry the token, so files are fetched (with it) and handed to the browser
  // as a blob: no token ever appears in a URL.
  async function fetchBlobURL(path) {
    const blob = await (await request(path, { cache: "no-store" })).blob();
    const href = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(href), 60_000); // long enough for the browser to take it
    return href;
  }

  async function download(path, filename) {
    const link = element("a", { href: await fetchBlobURL(path), download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  }

  // API JSON (a trial's detail) in a new tab: the tab opens during the click, so popup blockers
  // let it, and shows the answer once the fetch has it.
  async function openInTab(path) {
    const tab = window.open("", "_blank");
    if (!tab) throw new Error("the browser blocked the new tab");
    try {
      tab.location.href = await fetchBlobURL(path);
    } catch (err) {
      tab.close();
      throw err;
    }
  }

  // Calls `tick` every `ms`, never two at once, skipping while the tab is hidden; at once when the
  // prompt gets a token.
  function poll(tick, ms) {
    let timer = null;
    let busy = false;
    async function loop() {
      clearTimeout(timer);
      if (busy) return; // the running tick schedules the next one
      busy = true;
      if (!document.hidden) {
        try {
          await tick();
        } catch (err) {
          console.error(err);
        }
      }
      busy = false;
      timer = setTimeout(loop, ms);
    }
    document.addEventListener(TOKEN_GIVEN, loop);
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

  // The token prompt: shown when the API answers 401 (a refused token is forgotten), hidden once
  // a token is given; the pages then poll again at once.
  function askForToken(refused) {
    if (refused) setToken("");
    const prompt = document.getElementById("token-prompt");
    document.getElementById("token-reason").textContent = refused
      ? "The server refused that token: enter its API token."
      : "This server needs its API token.";
    if (prompt.hidden) {
      prompt.hidden = false;
      document.getElementById("token-input").focus();
    }
  }

  function setUpTokenPrompt() {
    const prompt = document.getElementById("token-prompt");
    const input = document.getElementById("token-input");
    prompt.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      setToken(value);
      input.value = "";
      prompt.hidden = true;
      document.dispatchEvent(new Event(TOKEN_GIVEN));
    });
  }

  document.addEventListener("DOMContentLoaded", setUpTokenPrompt);

  return {
    ApiError, url, getJSON, post, download, openInTab, poll, element, statusBadge, formatFitness, formatDuration,
    formatTime,
  };
})();
