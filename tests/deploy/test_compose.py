"""docker-compose.yml checked against the code it deploys (no Docker engine runs here): the services,
Ray's ports published on loopback only, the GPU reservation, EVOLVER_* names that ApiSettings
really reads, Dockerfiles that exist, and commands that the evolver and ray CLIs accept."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from api.settings import ApiSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SECRETS = ("POSTGRES_PASSWORD", "EVOLVER_API_TOKEN", "RAY_AUTH_TOKEN")
RAY_SERVICES = ("ray-head", "ray-worker")
SHARED_SERVICES = ("ray-head", "ray-worker", "api")  # they read and write the same run folders
# What the API needs to be told in a cluster (ApiSettings' defaults are for one machine).
DEPLOYMENT_SETTINGS = {"db_url", "api_token", "ray_address", "project_dir", "data_roots", "host"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}; a missing required one raises."""
    def one(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return rest if kind == "-" else ""
    return INTERPOLATION.sub(one, value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {key: str(value) for key, value in env.items()}


def published(service: dict) -> list[tuple[str | None, int, int]]:
    """(host ip, host port, container port) of each short-syntax port mapping."""
    rows = []
    for entry in service.get("ports", []):
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"write ports as [IP:]HOST:CONTAINER, got {entry!r}"
        ip = parts[0] if len(parts) == 3 else None
        rows.append((ip, int(parts[-2]), int(parts[-1])))
    return rows


def test_services_and_private_network(compose, services):
    assert set(services) == {"postgres", "ray-head", "ray-worker", "api"}
    for name, service in services.items():
        assert service.get("networks") == ["evolver"], name
    assert "evolver" in compose["networks"]
    assert not services["postgres"].get("ports"), "the database is reached only inside the network"
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert set(compose["volumes"]) >= {"pgdata", "runs", "data"}


def test_every_published_port_is_on_loopback(services):
    ray_head = {container: ip for ip, _, container in published(services["ray-head"])}
    assert ray_head == {8265: "127.0.0.1", 6379: "127.0.0.1"}
    for name, service in services.items():
        for ip, host_port, _ in published(service):
            assert ip == "127.0.0.1", f"{name} publishes port {host_port} beyond loopback"
    assert not published(services["ray-worker"])
    assert "--dashboard-host 0.0.0.0" in " ".join(services["ray-head"]["command"].split())  # inside the network


def test_gpu_workers_reserve_one_gpu_each_and_scale(services):
    deploy = services["ray-worker"]["deploy"]
    assert isinstance(deploy["replicas"], int) and deploy["replicas"] >= 1
    (device,) = deploy["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and "gpu" in device["capabilities"]
    assert "--num-gpus 1" in services["ray-worker"]["command"]
    assert "ray-head:6379" in services["ray-worker"]["command"]


def test_evolver_environment_names_are_api_settings(services):
    fields = set(ApiSettings.model_fields)
    prefix = ApiSettings.model_config["env_prefix"]
    used = {}
    for name, service in services.items():
        for key in environment(service):
            if key.startswith(prefix):
                setting = key[len(prefix):].lower()
                assert setting in fields, f"{name}: {key} is not a field of ApiSettings"
                used[setting] = name
    required = {n for n, f in ApiSettings.model_fields.items() if f.is_required()}
    assert required | DEPLOYMENT_SETTINGS <= set(used), f"the API is not told {sorted(DEPLOYMENT_SETTINGS - set(used))}"
    assert set(used.values()) == {"api"}


def test_api_environment_builds_valid_settings(services, monkeypatch):
    dummy = {secret: f"test-{secret.lower()}" for secret in SECRETS}
    api_env = {key: interpolate(value, dummy) for key, value in environment(services["api"]).items()}
    for key in list(os.environ):
        if key.startswith("EVOLVER_"):
            monkeypatch.delenv(key)
    for key, value in api_env.items():
        monkeypatch.setenv(key, value)
    settings = ApiSettings()
    assert settings.api_token is not None and not settings.listens_on_loopback  # serve refuses this without a token
    assert settings.database_url().startswith("postgresql+psycopg://evolver:test-postgres_password@postgres:5432/")
    assert settings.ray_address == "http://ray-head:8265"  # RayJobLauncher's JobSubmissionClient address
    assert settings.resolved_data_roots() == [Path("/srv/evolver/data")]
    # The run folders the API creates are the ones the coordinator and workers write to.
    for name in SHARED_SERVICES:
        assert f"runs:{settings.project_dir}" in services[name]["volumes"], name


def test_secrets_are_required_not_defaulted(services):
    text = COMPOSE.read_text()
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"(:[?-][^}]*)?\}", text)
        assert uses and all(u.startswith(":?") for u in uses), f"{secret} must be ${{{secret}:?…}}"
    with pytest.raises(KeyError, match="EVOLVER_API_TOKEN"):
        interpolate(environment(services["api"])["EVOLVER_API_TOKEN"], {})


def test_ray_token_auth_everywhere_ray_is_reached(services):
    for name in (*RAY_SERVICES, "api"):
        env = environment(services[name])
        assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in env, name


def test_dockerfiles_exist_and_bake_in_no_secrets(services):
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        dockerfile = REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        text = dockerfile.read_text()
        assert not re.search(r"^\s*(ENV|ARG)\s+\S*(PASSWORD|TOKEN|SECRET)", text, re.M | re.I), dockerfile
        torch_line = text.index("torch==")
        assert "--index-url" in text[text.rfind("\n", 0, torch_line):torch_line]
        assert torch_line < text.index('pip install ".[export]"'), "torch must come from its index first"
        for source in re.findall(r"^COPY\s+(\S+)\s", text, re.M):
            assert (REPO / build.get("context", ".") / source).exists(), f"COPY {source}: missing"
    assert services["api"]["image"] == services["ray-head"]["image"] == services["ray-worker"]["image"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ray.scripts imports Ray Serve's pydantic models
def test_commands_are_real_cli_commands(services):
    from click import Context
    from ray.scripts.scripts import start as ray_start

    from evolver.cli import build_parser

    api = shlex.split(services["api"]["command"])
    assert api[:3] == ["python", "-m", "evolver"]
    parser, _ = build_parser()
    assert parser.parse_args(api[3:]).command == "serve"
    for name in RAY_SERVICES:
        words = shlex.split(services[name]["command"])
        assert words[:2] == ["ray", "start"], name
        context: Context = ray_start.make_context("start", words[2:])  # raises on an unknown flag
        assert context.params["block"] is True, f"{name}: without --block the container exits at once"
    head = ray_start.make_context("start", shlex.split(services["ray-head"]["command"])[2:]).params
    assert head["head"] and head["port"] == 6379 and head["dashboard_port"] == 8265


def test_docker_compose_config_accepts_it():
    """`docker compose config` (or v1's docker-compose) where one is installed."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        command = ["docker-compose"]
    else:
        pytest.skip("no docker compose plugin nor docker-compose here")
    env = {**os.environ, **{secret: "x" for secret in SECRETS}}
    done = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    missing = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
    done = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], env=missing, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "RAY_AUTH_TOKEN" in done.stderr
