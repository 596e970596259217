// The API reference pages (/docs: Swagger UI, /redoc: ReDoc). The OpenAPI document is fetched
// through dashboard.js, so a server with a token shows the dashboard's token prompt and the tab
// keeps the token; the viewer is started with the document once it has it. Requests Swagger UI
// sends ("Try it out") carry the tab's token, unless its Authorize button set another.
"use strict";

(() => {
  const TOKEN_KEY = "evolver.apiToken"; // where dashboard.js keeps the tab's token
  const RETRY_MS = 3000; // until the document loads: a token given, or a server back up
  let shown = false;

  function withToken(request) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token && !request.headers.Authorization) request.headers.Authorization = `Bearer ${token}`;
    return request;
  }

  function start(spec) {
    const target = document.getElementById("api-viewer");
    if (document.body.dataset.viewer === "redoc") {
      Redoc.init(spec, {}, target);
    } else {
      // validatorUrl: null: no badge fetched from the public validator (offline, and the document is ours).
      SwaggerUIBundle({ spec, domNode: target, requestInterceptor: withToken, deepLinking: true, validatorUrl: null });
    }
  }

  async function load() {
    if (shown) return;
    const error = document.getElementById("docs-error");
    let spec;
    try {
      spec = await Evolver.getJSON("/openapi.json");
    } catch (err) {
      // A 401 has shown the token prompt; anything else is said here, and tried again.
      error.textContent = err.status === 401 ? "" : `Could not load /openapi.json: ${err.message}`;
      error.hidden = err.status === 401;
      return;
    }
    shown = true;
    error.hidden = true;
    start(spec);
  }

  Evolver.poll(load, RETRY_MS); // also at once when the prompt gets a token
})();
