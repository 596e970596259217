"""Security and bad input: the bearer token on every route but the open ones (liveness, metrics,
the dashboard's page shells and static files), data-root confinement of every path (`..` and
symlink escapes), safe YAML only, body and upload limits, 422 naming each bad field, and nothing
stored by any rejected request. `evolver serve` refuses a public address without a token."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from fastapi.routing import iter_route_contexts

from evolver.cli import main
from evolver.store import Store
from tests.api.helpers import api_settings, running_app, sleep_spec


@pytest.fixture
def app(tmp_path):
    """(client, settings, data root) of an app whose campaigns stay queued (nothing trains here)."""
    settings = api_settings(tmp_path, max_upload_bytes=2048)
    with running_app(settings, launcher="queue") as (client, _):
        yield client, settings, tmp_path / "data"


def stored(settings) -> list:
    with Store.open(settings.database_url()) as store:
        return [(c.id, c.status) for c in store.campaigns()]


def assert_rejected(client, settings, response, status: int, *locs: list) -> None:
    assert response.status_code == status, response.text
    if locs:
        got = [problem["loc"] for problem in response.json()["detail"]]
        for loc in locs:
            assert loc in got, (loc, got)
    assert stored(settings) == []
    assert not any((settings.project_dir).glob("*")) if settings.project_dir.exists() else True


def test_write_endpoints_need_the_token(tmp_path):
    settings = api_settings(tmp_path, api_token="s3cret-token")
    with running_app(settings, launcher="queue") as (client, _):
        assert client.post("/campaigns", json=sleep_spec()).status_code == 401
        wrong = client.post("/campaigns", json=sleep_spec(), headers={"Authorization": "Bearer s3cret-tokeX"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert client.post("/campaigns", json=sleep_spec(), headers={"Authorization": "Basic s3cret-token"}).status_code == 401
        assert stored(settings) == []
        ok = client.post("/campaigns", json=sleep_spec(), headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 201
        cid = ok.json()["id"]
        auth = {"Authorization": "Bearer s3cret-token"}
        assert client.get(f"/campaigns/{cid}").status_code == 401  # reads need it too
        assert client.get(f"/campaigns/{cid}", headers={"Authorization": "bearer s3cret-token"}).status_code == 200
        assert client.post(f"/campaigns/{cid}/cancel").status_code == 401
        assert stored(settings) == [(cid, "queued")]
        assert client.post(f"/campaigns/{cid}/cancel", headers=auth).json()["status"] == "cancelled"
        assert client.post(f"/campaigns/{cid}/resume").status_code == 401


TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# What answers without the token when one is set: liveness, metrics, the page shells and static
# files of the dashboard and of /docs and /redoc (which fetch /openapi.json with the token).
# Everything else the app serves, now or added later, needs it.
OPEN_ROUTES = {("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/"), ("GET", "/campaigns/{campaign_id}/view"),
               ("GET", "/static/plotly.min.js"), ("GET", "/static/{name}"),
               ("GET", "/docs"), ("GET", "/redoc"), ("GET", "/static/docs/{name}")}


def served_routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, included routers flattened."""
    return sorted({(method, route.path) for route in iter_route_contexts(app.routes)
                   for method in (route.methods or ())})


def concrete(path: str, campaign_id: int) -> str:
    """The template with a sample value in each parameter (a new parameter needs one here)."""
    samples = {"campaign_id": str(campaign_id), "number": "0", "name": "dashboard.js"}

    def sample(match: re.Match) -> str:
        name = match.group(1).split(":")[0]
        assert name in samples, f"route parameter {name!r} has no sample value in this test: add one"
        return samples[name]

    return re.sub(r"{([^}]+)}", sample, path)


def answers(client, method: str, path: str, headers: dict | None = None) -> int:
    return client.request(method, path, headers=headers).status_code


def test_with_a_token_every_route_but_the_open_ones_needs_it(tmp_path):
    settings = api_settings(tmp_path, api_token=TOKEN, read_cache_seconds=5.0)
    with running_app(settings, launcher="queue") as (client, _):
        cid = client.post("/campaigns", json=sleep_spec(), headers=AUTH).json()["id"]
        routes = served_routes(client.app)
        assert OPEN_ROUTES <= set(routes)  # the test's list names routes that exist
        guarded = [(m, p) for m, p in routes if (m, p) not in OPEN_ROUTES and m != "HEAD"]
        assert ("GET", "/campaigns/{campaign_id}/artefacts/{name}") in guarded and ("GET", "/openapi.json") in guarded
        for method, template in routes:
            path = concrete(template, cid)
            if (method, template) in OPEN_ROUTES:
                assert answers(client, method, path) != 401, (method, path)
                continue
            refused = client.request(method, path)
            assert refused.status_code == 401, (method, path, refused.status_code)
            assert refused.headers["www-authenticate"] == "Bearer"
            if method != "HEAD":
                assert refused.json() == {"detail": "a valid bearer token is required"}
            assert answers(client, method, path, {"Authorization": f"Bearer {TOKEN}x"}) == 401, (method, path)
            assert answers(client, method, path, {"Authorization": f"Basic {TOKEN}"}) == 401, (method, path)
            assert answers(client, method, path, AUTH) != 401, (method, path)
        assert answers(client, "GET", "/no-such-route") == 401  # refused by default
        assert answers(client, "GET", "/no-such-route", AUTH) == 404
        assert answers(client, "POST", "/healthz") == 401  # open is per method, not per path


def test_a_cached_read_is_never_handed_out_without_the_token(tmp_path):
    settings = api_settings(tmp_path, api_token=TOKEN, read_cache_seconds=30.0)
    with running_app(settings, launcher="queue") as (client, _):
        cid = client.post("/campaigns", json=sleep_spec(), headers=AUTH).json()["id"]
        for path in ("/campaigns", f"/campaigns/{cid}", f"/campaigns/{cid}/trials"):
            assert client.get(path, headers=AUTH).status_code == 200  # now in the read cache
            assert client.get(path).status_code == 401, path


def test_without_a_token_every_route_answers_as_before(tmp_path):
    settings = api_settings(tmp_path)
    assert settings.api_token is None and settings.listens_on_loopback
    with running_app(settings, launcher="queue") as (client, _):
        cid = client.post("/campaigns", json=sleep_spec()).json()["id"]
        for method, template in served_routes(client.app):
            assert answers(client, method, concrete(template, cid)) != 401, (method, template)


def test_bad_fields_are_422_naming_each(app):
    client, settings, _ = app
    response = client.post("/campaigns", json=sleep_spec(
        generations=-1, hyp={"lr0": 0.01, "learning_rate": 1.0},
        search_space={"lr0": {"lower": 0.5, "upper": 0.1}}, colour="red"))
    assert_rejected(client, settings, response, 422, ["body", "generations"], ["body", "hyp"],
                    ["body", "search_space"], ["body", "colour"])
    messages = " ".join(p["msg"] for p in response.json()["detail"])
    assert "learning_rate" in messages and "lower" in messages


def test_missing_dataset_is_422(app):
    client, settings, _ = app
    response = client.post("/campaigns", json={"name": "x", "data": "missing/data.yaml"})
    assert_rejected(client, settings, response, 422, ["body", "data"])
    assert "no such file" in response.json()["detail"][0]["msg"]


def test_paths_must_stay_inside_data_roots(app, tmp_path):
    client, settings, root = app
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [a]\n")
    (outside / "hyp.yaml").write_text("lr0: 0.01\n")
    (root / "link.yaml").symlink_to(outside / "data.yaml")
    (root / "hyp_link.yaml").symlink_to(outside / "hyp.yaml")
    (root / "linked_dir").symlink_to(outside)
    cases = {
        "data": ["../outside/data.yaml", str(outside / "data.yaml"), "link.yaml", "linked_dir/data.yaml"],
        "hyp_file": ["../outside/hyp.yaml", "hyp_link.yaml"],
        "weights": ["/etc/passwd", "../../../../etc/passwd"],
    }
    for field, values in cases.items():
        for value in values:
            response = client.post("/campaigns", json={"name": "x", field: value})
            assert_rejected(client, settings, response, 422, ["body", field])
            assert "outside" in response.json()["detail"][0]["msg"], (field, value)


def test_data_yaml_inside_roots_may_not_point_outside(app):
    client, settings, root = app
    (root / "escape.yaml").write_text("path: /etc\ntrain: .\nval: .\nnames: [a]\n")
    response = client.post("/campaigns", json={"name": "x", "data": "escape.yaml"})
    assert_rejected(client, settings, response, 422, ["body", "data"])


def test_paths_inside_roots_are_stored_resolved(app):
    client, settings, root = app
    (root / "set").mkdir()
    (root / "set" / "images").mkdir()
    (root / "set" / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [a]\n")
    (root / "hyp.yaml").write_text("lr0: 0.02\n")
    response = client.post("/campaigns", json={"name": "ok", "data": "set/../set/data.yaml", "hyp_file": "hyp.yaml",
                                               "trainer": "sleep"})
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["data"] == str((root / "set" / "data.yaml").resolve())
    assert spec["hyp_file"] == str((root / "hyp.yaml").resolve())


def test_unsafe_or_odd_documents_are_refused(app):
    client, settings, _ = app
    evil = "name: x\nhyp: !!python/object/apply:os.system ['touch /tmp/evolver-pwned']\n"
    response = client.post("/campaigns", files={"spec": ("c.yaml", evil)})
    assert_rejected(client, settings, response, 422, ["body", "spec"])
    assert not os.path.exists("/tmp/evolver-pwned")
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
    assert_rejected(client, settings, client.post("/campaigns", files={"spec": ("c.yaml", bomb)}), 422, ["body", "spec"])
    nan = client.post("/campaigns", content=b'{"name": "x", "hyp": {"lr0": NaN}}',
                      headers={"content-type": "application/json"})
    assert_rejected(client, settings, nan, 422, ["body"])
    deep = client.post("/campaigns", content=b"[" * 5000 + b"]" * 5000, headers={"content-type": "application/json"})
    assert_rejected(client, settings, deep, 422)
    assert_rejected(client, settings, client.post("/campaigns", json=[1, 2]), 422, ["body"])
    assert_rejected(client, settings, client.post("/campaigns", content=b"{", headers={"content-type": "application/json"}), 422)
    assert_rejected(client, settings, client.post("/campaigns", content=b"x", headers={"content-type": "text/plain"}), 415)
    bad_hyp = client.post("/campaigns", files={"spec": ("c.yaml", "name: x\n"), "hyp": ("h.yaml", "lr0: .inf\n")})
    assert_rejected(client, settings, bad_hyp, 422, ["body", "hyp", "lr0"])
    unknown_hyp = client.post("/campaigns", files={"spec": ("c.yaml", "name: x\n"), "hyp": ("h.yaml", "lrX: 1\n")})
    assert_rejected(client, settings, unknown_hyp, 422, ["body", "hyp"])
    extra = client.post("/campaigns", files={"spec": ("c.yaml", "name: x\n"), "script": ("run.sh", "rm -rf /")})
    assert_rejected(client, settings, extra, 422, ["body", "script"])


def test_deep_yaml_is_refused_at_the_limit_without_parsing_the_rest(app):
    """PyYAML composes deep nesting slowly (a 16 KB file took 42 s): the scan stops at the limit.
    The document below is broken after its 1,000 opening brackets; the refusal names the nesting,
    so nothing past level 17 was read."""
    client, settings, _ = app
    deep = "name: x\nhyp: " + "[" * 1000 + "1" + "]" * 999
    response = client.post("/campaigns", files={"spec": ("c.yaml", deep)})
    assert_rejected(client, settings, response, 422, ["body", "spec"])
    assert "nested deeper than 16 levels" in response.text


def test_body_and_upload_limits(app):
    client, settings, _ = app
    big = {"name": "x", "hyp": {}, "pad": "x" * (settings.max_body_bytes + 10)}
    assert_rejected(client, settings, client.post("/campaigns", json=big), 413)

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(40):
            yield b" " * 32768

    streamed = client.post("/campaigns", content=chunks(), headers={"content-type": "application/json"})
    assert_rejected(client, settings, streamed, 413)
    upload = yaml.safe_dump({"name": "x", "pad": "y" * 4000})
    assert_rejected(client, settings, client.post("/campaigns", files={"spec": ("c.yaml", upload)}), 413)


def test_downloads_serve_only_recorded_files(app):
    client, settings, _ = app
    cid = client.post("/campaigns", json=sleep_spec()).json()["id"]
    for name in ("..%2F..%2Fevolver.db", "%2Fetc%2Fpasswd", "evolver.db", "hyp_evolved.yaml"):
        assert client.get(f"/campaigns/{cid}/artefacts/{name}").status_code == 404, name
    assert client.get(f"/campaigns/{cid}/hyp_evolved.yaml").status_code == 404  # not written yet


def test_serve_refuses_public_address_without_token(capsys, monkeypatch):
    monkeypatch.delenv("EVOLVER_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "without a token" in capsys.readouterr().err
    monkeypatch.setenv("EVOLVER_API_TOKEN", "")  # empty counts as unset
    assert main(["serve", "--host", "10.1.2.3"]) == 2
