"""The one typed settings object, read once at start-up from the environment.

Every setting is listed in the README's settings table. Names take the ``OCDS_LIVE_`` prefix, except
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS``, which keep their conventional names.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.exceptions import ConfigurationError, MissingSettingError

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """ocds-live's configuration. Build it with :func:`load_settings`, once, in an entry point."""

    model_config = SettingsConfigDict(env_prefix="OCDS_LIVE_", frozen=True, extra="ignore")

    # where things live
    data_dir: Path = Field(default=PROJECT_DIR / ".local", description="local services' data and logs")
    schema_dir: Path | None = Field(
        default=None, description="folder with the OCDS 1.1.5 release-schema.json and codelists/"
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "ocds-live", description="where a downloaded schema is kept"
    )
    extensions_dir: Path | None = Field(
        default=None, description="folder of OCDS extensions laid out as ../shared/ocds/extensions (index.json)"
    )
    extensions_download: bool = Field(
        default=True, description="download a declared extension missing from extensions_dir and the cache, once"
    )
    publishers_file: Path = Field(
        default=PROJECT_DIR / "config" / "publishers.toml", description="publishers, tokens, prefixes"
    )
    oc4ids_dir: Path | None = Field(
        default=None, description="folder with the OC4IDS 0.9.4 project-schema.json and project-package-schema.json"
    )
    projects_file: Path = Field(
        default=PROJECT_DIR / "config" / "projects.toml", description="operators' project-level fields of projects"
    )

    # services
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "OCDS_LIVE_DATABASE_URL"),
        description="PostgreSQL DSN; unset: the embedded pgserver under data_dir",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "OCDS_LIVE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_controller_port: int = Field(default=9093, description="the local KRaft controller's port")

    # topics
    releases_topic: str = "ocds.releases"
    rejected_topic: str = "ocds.rejected"
    changes_topic: str = "ocds.changes"
    partitions: int = Field(default=4, ge=1, description="partitions of the topics ocds-live creates")
    app_id: str = Field(default="ocds-live", description="Faust app id = Kafka consumer group")

    # stream processing
    batch_size: int = Field(default=500, ge=1, description="releases per store transaction, at most")
    batch_within: float = Field(default=0.05, gt=0, description="seconds to wait to fill a batch")
    record_cache_size: int = Field(default=5000, ge=0, description="merged records a worker keeps in memory")
    project_build_interval: float = Field(
        default=1.0, gt=0, description="seconds at least between the project builder's rounds"
    )
    project_build_share: float = Field(
        default=0.1, gt=0, le=1, description="share of a worker's time project rebuilds may take under load"
    )
    max_release_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_depth: int = Field(default=64, ge=8, description="deepest JSON nesting accepted in a release")
    full_gc_interval: float = Field(
        default=120.0, gt=0, description="seconds between the full garbage collections of workers and feed servers"
    )

    # feed server
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field(default="", description="base URL for links; default http://host:port")
    ws_queue_size: int = Field(default=1000, ge=1, description="changes a live subscriber may fall behind")
    ws_send_timeout: float = Field(default=5.0, gt=0, description="seconds one websocket send may block")
    ws_max_per_client: int = Field(default=100, ge=1, description="websocket connections per client address")
    http_max_per_client: int = Field(
        default=64, ge=1, description="HTTP connections one client address may hold open at once, per server "
        "process (websockets not counted: see ws_max_per_client); the next is answered 429"
    )
    feed_step: float = Field(
        default=0.025, ge=0, description="seconds at least between two steps of the change hub (commits that come "
        "closer are sent together)"
    )
    websub_hub: str | None = Field(default=None, description="a WebSub hub to advertise in Atom feeds")
    read_rate_limit: float = Field(default=50.0, gt=0, description="API requests per second per client")
    search_window: int = Field(
        default=10_000, ge=1, description="/api/search ranks by relevance, and counts facets and the total, over "
        "the newest this many matches; beyond it the total is a lower bound (total_relation gte)"
    )
    publisher_rate_limit: float = Field(
        default=200.0, gt=0, description="releases per second over HTTP ingest for a publisher whose entry sets none"
    )
    operator_token: SecretStr | None = None

    # watchdog (issue 12: consumers/watchdog_service.py, consumers/webhooks.py)
    redflags_file: Path = Field(default=PROJECT_DIR / "config" / "redflags.toml", description="red-flag rules file")
    watchdog_group: str = Field(default="", description="the watchdog's consumer group; empty: <app_id>-watchdog")
    webhook_retry_base: float = Field(default=30.0, gt=0, description="seconds before a webhook's first retry "
                                      "(doubled at each failure, with jitter)")
    webhook_max_age: float = Field(default=86_400.0, gt=0, description="seconds a webhook delivery is retried "
                                   "before it is marked failed")
    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds a webhook receiver may take to answer")

    @cached_property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def watchdog_group_id(self) -> str:
        return self.watchdog_group or f"{self.app_id}-watchdog"

    def require_operator_token(self) -> str:
        if self.operator_token is None:
            raise MissingSettingError("OCDS_LIVE_OPERATOR_TOKEN")
        return self.operator_token.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, translating pydantic's errors into ours."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc
