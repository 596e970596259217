"""`evolver serve`: run the REST API and dashboard with uvicorn.

Registered by evolver/cli.py; imports nothing heavy until the command runs. Refuses to listen
beyond loopback without EVOLVER_API_TOKEN: the API starts Ray jobs, so an open write endpoint on a
network would hand that network the cluster.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  evolver serve                                   http://127.0.0.1:8000/ (local Ray head, SQLite in runs/evolve)
  evolver serve --db postgresql+psycopg://u:p@db/evolver --ray-address http://head:8265
  EVOLVER_API_TOKEN=secret evolver serve --host 0.0.0.0    (a token is required off loopback)
  evolver serve --submit examples/synthetic-campaign.yaml   (what `make demo` runs)
"""


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the REST API and dashboard", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Serve the campaign REST API (OpenAPI at /docs) and the dashboard. Settings "
                                   "also come from EVOLVER_* environment variables (EVOLVER_API_TOKEN, "
                                   "EVOLVER_DATA_ROOTS, …); flags win.")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--db", help="SQLAlchemy URL (default: SQLite in the project folder)")
    p.add_argument("--project", help="folder of run folders and the default database (default runs/evolve)")
    p.add_argument("--ray-address", help="Ray Jobs API address, e.g. http://head:8265 (default: a local "
                                         "Ray head on 127.0.0.1, started with the first campaign)")
    p.add_argument("--ray-num-cpus", type=int, help="CPUs of the local Ray head (default: all)")
    p.add_argument("--data-root", action="append", dest="data_roots", metavar="DIR",
                   help="folder that dataset / hyp / weights paths must lie in (repeatable; default: the "
                        "working directory and the synthetic dataset cache)")
    p.add_argument("--submit", metavar="CAMPAIGN_YAML",
                   help="once the server is up, submit this campaign through the REST API")
    p.add_argument("--access-log", action="store_true", help="log every request (off: it costs CPU per request)")


def _settings(args: argparse.Namespace):
    from api.settings import ApiSettings

    flags = {"host": args.host, "port": args.port, "db_url": args.db, "project_dir": args.project,
             "ray_address": args.ray_address, "ray_num_cpus": args.ray_num_cpus, "data_roots": args.data_roots}
    return ApiSettings(**{key: value for key, value in flags.items() if value is not None})


def dashboard_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        settings = _settings(args)
    except ValidationError as err:
        print(f"evolver serve: error: invalid settings: {err}", file=sys.stderr)
        return 2
    if not settings.listens_on_loopback and settings.api_token is None:
        print(f"evolver serve: error: refusing to listen on {settings.host} without a token: set "
              "EVOLVER_API_TOKEN (the API then needs 'Authorization: Bearer <token>'), or use "
              "--host 127.0.0.1", file=sys.stderr)
        return 2
    import uvicorn

    from api.app import create_app

    print(f"Evolver dashboard: {dashboard_url(settings.host, settings.port)}  (REST API docs: "
          f"{dashboard_url(settings.host, settings.port)}docs)", flush=True)
    if args.submit:
        import threading

        threading.Thread(target=_submit_when_up, args=(settings, args.submit), daemon=True).start()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                access_log=args.access_log)
    return 0


def _submit_when_up(settings, spec_path: str) -> None:
    """POST the campaign yaml to this server as a client would, once /healthz answers."""
    import time

    import httpx

    base = dashboard_url("127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host, settings.port)
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"} if settings.api_token else {}
    for _ in range(300):
        try:
            if httpx.get(base + "healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    response = httpx.post(base + "campaigns", files={"spec": (spec_path, upload_of(spec_path), "application/yaml")},
                          headers=headers, timeout=120)
    if response.status_code == 201:
        campaign = response.json()
        print(f"campaign {campaign['id']} ({campaign['name']}) submitted: "
              f"{base}campaigns/{campaign['id']}/view", flush=True)
    else:
        print(f"evolver serve: submitting {spec_path} failed: {response.status_code} {response.text}", flush=True)


def upload_of(spec_path: str) -> bytes:
    """The campaign yaml to upload, with relative file paths made absolute against its folder.

    `evolver run` reads them relative to the yaml (examples/synthetic-campaign.yaml names
    `weights: yolov5n-shapes.pt` beside it); the server, which never sees the yaml's folder,
    would take them relative to its first data root instead. The server still checks that the
    absolute paths lie inside its data roots."""
    from pathlib import Path

    import yaml

    from evolver.campaign import FILE_FIELDS, names_a_file

    text = Path(spec_path).read_bytes()
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        return text  # the server answers with the 422 that names the problem
    folder = Path(spec_path).resolve().parent
    for field in FILE_FIELDS:
        value = document.get(field)
        if isinstance(value, str) and names_a_file(field, value) and not Path(value).expanduser().is_absolute():
            document[field] = str(folder / value)
    return yaml.safe_dump(document, sort_keys=False).encode()


HANDLERS = {"serve": run_serve}


def register(sub: argparse._SubParsersAction) -> dict:
    """`evolver serve` (found by the dispatcher through the `evolver.commands` entry point)."""
    add_subcommands(sub)
    return dict(HANDLERS)
