"""Server settings, read once from the environment (prefix EVOLVER_) or given by the caller.

Everything the app needs to know about its surroundings lives here, so routes never read
environment variables and tests build an app from explicit values.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PROJECT = Path("runs/evolve")
DEFAULT_SYNTHETIC_CACHE = Path.home() / ".cache" / "evolver" / "synthetic"


def _default_data_roots() -> list[Path]:
    """The working directory and the built-in synthetic dataset's cache (where `synthetic` lives)."""
    return [Path.cwd(), DEFAULT_SYNTHETIC_CACHE]


class ApiSettings(BaseSettings):
    """Configuration of one API server (EVOLVER_DB_URL, EVOLVER_API_TOKEN, EVOLVER_DATA_ROOTS='["/data"]', …)."""

    model_config = SettingsConfigDict(env_prefix="EVOLVER_", extra="ignore", frozen=True)

    db_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in project_dir/evolver.db")
    api_token: SecretStr | None = Field(None, description="bearer token every route needs but /healthz, /metrics "
                                                             "and the dashboard's pages and static files")
    ray_address: str | None = Field(None, description="Ray dashboard / Jobs API address (http://host:8265); "
                                                      "default: a local head on 127.0.0.1 started at first use")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray head (default: all)")
    data_roots: list[Path] = Field(default_factory=_default_data_roots,
                                   description="folders that dataset, hyp and weights paths must resolve into")
    project_dir: Path = Field(DEFAULT_PROJECT, description="where campaign run folders are created")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted (413 beyond)")
    max_upload_bytes: int = Field(256 << 10, ge=1024, description="largest uploaded spec / hyp file (413 beyond)")
    cancel_grace_seconds: float = Field(10.0, ge=0.0, description="after a cancel, time the coordinator gets to "
                                                                  "stop its trials before its Ray job is stopped")
    job_watch_seconds: float = Field(5.0, gt=0.0, le=300.0, description="how often the Ray jobs of running "
                                     "campaigns are checked; a job that ended without its coordinator recording "
                                     "an end marks its campaign failed")
    read_cache_seconds: float = Field(1.0, ge=0.0, le=60.0, description="GETs of campaign resources are "
                                      "answered from memory for this long (0 = off); writes empty the cache")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    @field_validator("api_token")
    @classmethod
    def _no_empty_token(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty EVOLVER_API_TOKEN would mean "auth on, and '' is the password": treat it as unset."""
        return value if value is not None and value.get_secret_value() else None

    def database_url(self) -> str:
        """The configured URL, or the embedded default (SQLite beside the run folders)."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.project_dir / 'evolver.db').resolve()}"

    def resolved_data_roots(self) -> list[Path]:
        """Roots with symlinks followed, so that a path check compares real locations."""
        return [root.expanduser().resolve() for root in self.data_roots]

    @property
    def listens_on_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS
