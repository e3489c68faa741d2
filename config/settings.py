"""Configuration from the environment (pydantic-settings).

The event store follows eventsourcing's own variables: with no `PERSISTENCE_MODULE` set it is
a SQLite file under the data directory; `PERSISTENCE_MODULE=eventsourcing.postgres` with the
`POSTGRES_*` variables moves it to PostgreSQL. `TEMPORAL_ADDRESS` points at a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.policy import Policy

POOL_DEFAULTS = {"POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "9"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOUSING_CHAIN_", extra="ignore")

    data: Path = Field(Path("var"), description="data directory of the embedded stack")
    temporal_address: str = Field(
        "localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "HOUSING_CHAIN_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        "default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "HOUSING_CHAIN_TEMPORAL_NAMESPACE"),
    )
    temporal_tls_cert: Path | None = Field(
        None, description="client certificate (PEM) for a Temporal cluster with mTLS; with "
        "temporal_tls_key. Any TLS setting or an API key turns TLS on"
    )
    temporal_tls_key: Path | None = Field(None, description="the client certificate's private key (PEM)")
    temporal_tls_ca: Path | None = Field(
        None, description="CA (PEM) that signed the cluster's server certificate; unset: the "
        "system's roots (Temporal Cloud)"
    )
    temporal_tls_server_name: str | None = Field(
        None, description="the name to verify the server certificate against, when it is not "
        "the host of TEMPORAL_ADDRESS"
    )
    temporal_api_key: SecretStr | None = Field(
        None, description="an API key (Temporal Cloud); implies TLS"
    )
    task_queue: str = "housing-chain"
    workflow_cache: int = Field(
        10_000, ge=1,
        description="open workflows the worker keeps in memory; a step to one that is not "
                    "replays its whole history first; about 0.2 MB each (size it to the open cases)")
    gc_freeze_seconds: float = Field(
        30.0, ge=0,
        description="the worker (and `serve`) collects recent garbage and freezes the rest "
                    "this often, so that no collection walks every cached workflow or every "
                    "long-lived object again (config/gcwatch.py); 0 = "
                    "Python's own schedule")
    projection_page: int = Field(
        100_000, ge=1,
        description="notification ids the projection reads, folds and commits at a time while "
                    "catching up; bigger pages load and save a busy case's row fewer times "
                    "(bench/catchup.py) for some 90 MB more at the peak per 80,000")
    gc_full_minutes: float = Field(
        60.0, ge=0, description="a full collection, frozen objects included, this often")
    ui_port: int = 8233
    policy_file: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    smtp_host: str | None = Field(None, description="SMTP server for e-mail reminders; unset = off")
    smtp_port: int = 25
    mail_sender: str = "housing-chain@localhost"
    mail_domain: str = Field(
        "localhost", description="actor `bolots.ahmed` gets mail at bolots.ahmed@<mail_domain>"
    )
    mail_language: Literal["sv", "nb", "en"] = Field(
        "sv", description="the language of the reminder mails: sv, nb or en")
    supervisor: str = Field("enhetschef", description="actor who receives escalations")
    reports_dir: Path | None = Field(None, description="scheduled reports; default <data>/reports")
    api_host: str = Field("127.0.0.1", description="where `up` and `serve` listen for the API")
    api_port: int = Field(8000, description="the HTTP API and the web pages")
    allow_public_bind: bool = Field(
        False, description="let `up` listen on a non-loopback address (Temporal's frontend "
        "has no authentication of its own: protect it with mTLS or a firewall)"
    )
    api_url: str | None = Field(
        None, description="a remote installation's API: the CLI's steps and reports go there"
    )
    api_token: str | None = Field(None, description="the bearer token the CLI sends to api_url")
    oidc_issuer: str | None = Field(
        None, description="the identity provider (OIDC issuer URL); unset: the local issuer"
    )
    oidc_audience: str = "housing-chain"
    oidc_role_claim: str = "roles"
    oidc_unit_claim: str = "units"

    def policy(self) -> Policy:
        return Policy.load(self.policy_file)

    def reports_path(self) -> Path:
        """Where scheduled reports are written: `reports_dir`, or `reports` in the data directory
        (computed on use, so `--data` moves it along)."""
        return self.reports_dir or self.data / "reports"

    def private_data_dir(self) -> Path:
        """Create the data directory 0700 (tightened if it exists): it holds personal data,
        the key files and the databases."""
        self.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.data.stat().st_mode & 0o077:
            os.chmod(self.data, 0o700)
        return self.data

    @property
    def uses_postgres(self) -> bool:
        return os.environ.get("PERSISTENCE_MODULE", "").endswith("postgres")

    def postgres_env(self) -> dict[str, str]:
        """The environment for a PostgreSQL store, with small connection pools unless
        POSTGRES_POOL_SIZE / POSTGRES_MAX_OVERFLOW say otherwise.

        eventsourcing's own defaults (5 kept open, 15 at most) hold five idle connections per
        store: a worker, the API and two imports at once (four to six stores each) then reach
        PostgreSQL's default limit of 100 clients, and the next connection fails with "too many
        clients". One kept open and ten at most still covers the worker's eight activities and
        an import's sixteen updates in flight (they wait for a connection, not fail)."""
        return {**POOL_DEFAULTS, **os.environ}

    def view_env(self) -> dict[str, str]:
        """Where the read models live: `views.sqlite` beside the event store, or PostgreSQL."""
        if "PERSISTENCE_MODULE" in os.environ:
            return self.postgres_env()
        self.private_data_dir()
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.data / "views.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "30",
        }

    def audit_env(self) -> dict[str, str]:
        """Where the access log lives: PostgreSQL with the event store, else audit.sqlite."""
        if self.uses_postgres:
            return self.postgres_env()
        self.private_data_dir()
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}

    def event_store_env(self, store: str = "events") -> dict[str, str]:
        """eventsourcing environment for one store (`events` or `identities`).

        Variables already in the environment win; SQLite paths default to the data directory.
        """
        if "PERSISTENCE_MODULE" in os.environ:
            return self.postgres_env() if self.uses_postgres else {}
        self.private_data_dir()
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.data / f"{store}.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
