"""The HTML of the two dashboard pages: static shells that the scripts in api/static fill in.

No template engine: each page is one small string with a handful of escaped values. Element ids
here are the contract with campaign_list.js / campaign_view.js (and the browser test).
"""

from __future__ import annotations

from html import escape

EXAMPLE_SPEC = """name: demo
data: synthetic
trainer: sleep        # dry run; 'yolo' trains for real
epochs: 3
generations: 10
population: 2
cpu_workers: 2"""


def _page(title: str, root: str, body: str, scripts: tuple[str, ...], body_data: str = "") -> str:
    """The common frame: header, the token prompt (hidden until the API answers 401), the page
    body, then scripts."""
    root_attr = escape(root, quote=True)
    script_tags = "\n".join(f'<script src="{root_attr}/static/{name}" defer></script>' for name in scripts)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Evolver</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{root_attr}/static/dashboard.css">
{script_tags}
</head>
<body data-root="{root_attr}"{body_data}>
<header class="topbar">
  <a class="brand" href="{root_attr}/">Evolver</a>
</header>
<main>
<form id="token-prompt" class="token-prompt" autocomplete="off" hidden>
  <label for="token-input" id="token-reason">This server needs its API token.</label>
  <input id="token-input" type="password" autocomplete="off" required>
  <button type="submit">Use token</button>
  <span class="muted">kept in this tab only, until it closes</span>
</form>
{body}
</main>
</body>
</html>
"""


def campaign_list_page(root: str = "") -> str:
    body = f"""<h1>Campaigns</h1>
<p id="list-error" class="error" hidden></p>
<table id="campaigns" class="grid">
  <thead><tr><th>#</th><th>name</th><th>status</th><th>progress</th><th>running</th>
  <th>search's raw best</th><th>created</th></tr></thead>
  <tbody><tr><td colspan="7" class="muted">loading…</td></tr></tbody>
</table>

<section class="panel">
<h2>Submit a campaign</h2>
<form id="submit-form">
  <p class="muted">Paste a campaign as YAML or JSON, or choose a campaign YAML file (and, optionally,
  a YOLOv5 hyp YAML as its base hyperparameters).</p>
  <textarea id="spec-text" rows="9" spellcheck="false" placeholder="{escape(EXAMPLE_SPEC, quote=True)}"></textarea>
  <div class="row">
    <label>campaign file <input id="spec-file" type="file" accept=".yaml,.yml,.json"></label>
    <label>base hyp file <input id="hyp-file" type="file" accept=".yaml,.yml"></label>
    <button id="submit-button" type="submit">Submit</button>
  </div>
  <pre id="submit-result" class="result" role="status" hidden></pre>
</form>
</section>"""
    return _page("Campaigns", root, body, ("dashboard.js", "campaign_list.js"))


def campaign_page(campaign_id: int, root: str = "") -> str:
    body = """<section class="summary">
  <h1><span id="campaign-name">Campaign</span> <span id="campaign-status" class="badge"></span></h1>
  <p id="campaign-progress" class="muted"></p>
  <div class="row">
    <button id="cancel-button" type="button" disabled>Cancel</button>
    <button id="resume-button" type="button" disabled>Resume</button>
    <span id="downloads" class="downloads"></span>
  </div>
  <p id="message" class="result" role="status" hidden></p>
</section>

<section id="confirmation" class="panel">
  <h2>Confirmation</h2>
  <p id="confirm-state" class="confirm-state muted">loading…</p>
  <p id="confirm-warning" class="warning" role="note" hidden></p>
  <div id="confirm-chart" class="chart confirm-chart" hidden></div>
  <table id="confirm-table" class="grid" hidden>
    <thead><tr><th>candidate</th><th>search fitness</th><th>confirmed fitness (mean ± SE)</th>
    <th>retrainings</th><th>optimism</th></tr></thead>
    <tbody></tbody>
  </table>
  <p id="confirm-figures" class="muted"></p>
</section>

<section class="panel">
  <h2>Search fitness per generation</h2>
  <div id="fitness-chart" class="chart"></div>
</section>

<section class="panel">
  <h2>Running trials</h2>
  <ul id="running-trials" class="running"><li class="muted">none</li></ul>
</section>

<section class="panel">
  <h2>Hyperparameters against fitness</h2>
  <p class="muted">One chart per mutated hyperparameter; the star is the best trial.</p>
  <div id="evolve-grid" class="evolve-grid"></div>
</section>

<section class="panel">
  <h2>Trials</h2>
  <table id="trials" class="grid sortable">
    <thead><tr>
      <th data-key="number" aria-sort="ascending"><button type="button">#</button></th>
      <th data-key="generation"><button type="button">generation</button></th>
      <th data-key="stage"><button type="button">stage</button></th>
      <th data-key="status"><button type="button">status</button></th>
      <th data-key="fitness"><button type="button">fitness</button></th>
      <th data-key="worker"><button type="button">worker</button></th>
      <th data-key="duration"><button type="button">duration</button></th>
      <th data-key="epochs"><button type="button">epochs</button></th>
    </tr></thead>
    <tbody></tbody>
  </table>
</section>"""
    return _page(f"Campaign {campaign_id}", root, body,
                 ("plotly.min.js", "dashboard.js", "campaign_view.js"),
                 body_data=f' data-campaign-id="{int(campaign_id)}"')
