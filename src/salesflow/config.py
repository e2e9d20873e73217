"""All configuration in one place: explicit argument > env var (``SALESFLOW_``) > file > default.

Nested settings use ``__``: ``SALESFLOW_ALERTS__THRESHOLD=500``,
``SALESFLOW_BATCHING__MIN_FILES=10``. A TOML file named by ``SALESFLOW_CONFIG`` (default
``salesflow.toml`` in the working directory, if present) sits below the environment.
Nothing else in salesflow reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from salesflow.errors import ConfigError


class BatchingSettings(BaseModel):
    """Smart batching for products/orders/order_items, as seed 004 runs it."""

    datasets: tuple[str, ...] = ("products", "orders", "order_items")
    min_files: int = Field(
        10, ge=1, description="run once this many files wait and each dataset has one"
    )
    quiet_seconds: float = Field(
        1200.0, ge=0, description="run this long after one file of each dataset first waits"
    )
    max_files: int = Field(500, ge=1, description="files per batch at most")


SinkName = Literal["log", "jsonl", "smtp", "webhook", "sns"]


class SmtpSettings(BaseModel):
    host: str = "localhost"
    port: int = 25
    sender: str = "salesflow@localhost"
    recipients: list[str] = Field(default_factory=list)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    timeout: float = 10.0


class AlertSettings(BaseModel):
    """High-value sale alerts (seed 003) and how they are delivered.

    A failed delivery is retried with exponential backoff and full jitter: the n-th retry
    waits a random time between 0 and ``min(backoff_max_seconds, backoff_base_seconds *
    2**(n-1))``. An alert is FAILED once ``retry_for_seconds`` have passed since it was raised
    or it has had ``max_attempts``, whichever comes first.
    """

    threshold: float = Field(400.0, ge=0)
    thresholds: dict[str, float] = Field(default_factory=dict, description="per dataset")
    sinks: list[SinkName] = Field(default_factory=lambda: list[SinkName](["log", "jsonl"]))
    jsonl_path: Path | None = None
    webhook_url: str | None = None
    webhook_timeout: float = Field(5.0, gt=0, description="seconds to connect, and per read/write")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sqlite_busy_seconds: float = Field(
        30.0,
        gt=0,
        description="how long one SQLite statement waits for another process's write lock "
        "before the store counts as unavailable (the service then retries with backoff)",
    )
    max_attempts: int = Field(50, ge=1, description="give an alert up after this many attempts")
    retry_for_seconds: float = Field(
        3600.0, ge=0, description="keep retrying an alert this long after it was raised"
    )
    backoff_base_seconds: float = Field(2.0, gt=0, description="the first retry's longest wait")
    backoff_max_seconds: float = Field(300.0, gt=0, description="no retry waits longer")
    ingest_budget_seconds: float = Field(
        3.0,
        ge=0,
        description="`ingest` delivers due alerts for about this long (plus at most one sink "
        "timeout); the rest stay PENDING for `salesflow run` or `salesflow alerts retry`",
    )

    def threshold_for(self, dataset: str) -> float:
        return self.thresholds.get(dataset, self.threshold)


class AwsSettings(BaseModel):
    """Where the AWS backend's resources are: from the stack outputs, or set explicitly."""

    stack_name: str = "salesflow"
    region: str | None = None
    endpoint_url: str | None = None
    bucket: str | None = None
    dlq_url: str | None = None
    topic_arn: str | None = None
    state_machine_arn: str | None = None
    table_prefix: str | None = None
    sweep_after_seconds: float = Field(
        3600.0, gt=0, description="an inbox file this old with no execution is started again"
    )
    stuck_after_seconds: float = Field(
        3600.0, gt=0, description="an inbox file this old counts as stuck (alarmed)"
    )


class UiSettings(BaseModel):
    """The dashboard (``salesflow ui``)."""

    host: str = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535)
    token: SecretStr | None = Field(
        None, description="required on every request; needed to bind beyond loopback"
    )
    refresh_seconds: float = Field(2.0, gt=0, description="how often pages look for new data")


class SparkSettings(BaseModel):
    """The Spark engine (``--engine spark``): where it runs and how it splits the work."""

    master: str = Field("local[*]", description="local[N], spark://host:7077, yarn, ...")
    app_name: str = "salesflow"
    shuffle_partitions: int = Field(8, ge=1, description="partitions after a shuffle")
    partitions: int | None = Field(
        None, ge=1, description="split each file into this many read partitions (default: Spark's)"
    )
    bucket_uri: str | None = Field(
        None,
        description="the bucket as the executors see it (s3://my-bucket on EMR or Glue): "
        "Spark then reads inbox objects and writes its output there, not on the driver",
    )
    log_level: str = "ERROR"
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark.* settings")


class Settings(BaseSettings):
    """salesflow's settings. Build with ``Settings(data_dir=...)`` to override anything."""

    model_config = SettingsConfigDict(
        env_prefix="SALESFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file="salesflow.toml",
    )

    backend: Literal["local", "aws"] = "local"
    engine: Literal["polars", "spark"] = Field(
        "polars", description="where validation and KPIs run: polars (this process) or spark"
    )
    data_dir: Path = Path("salesflow-data")
    chunk_rows: int = Field(250_000, ge=1, description="rows validated at a time (bounds memory)")
    audit_rows: int = Field(
        2_000_000,
        ge=1,
        description="stored keys `salesflow audit` checks at a time (bounds its memory: the "
        "keys are split into this many per pass by hash, the KPIs recomputed month by month)",
    )
    poll_seconds: float = Field(1.0, gt=0, description="inbox polling fallback interval")
    settle_seconds: float = Field(
        2.0,
        ge=0,
        description="the service takes a file once its size and mtime have not changed for "
        "this long (a writer may still be writing it in place)",
    )
    settle_on_events: bool = Field(
        True,
        description="the service takes a file at once when it saw its writer close it after "
        "writing or rename it into the inbox, and it has not changed since; turn off for "
        "writers that append to one file in several sessions",
    )
    sqlite_busy_seconds: float = Field(
        30.0,
        gt=0,
        description="how long one SQLite statement waits for another process's write lock "
        "before the store counts as unavailable (the service then retries with backoff)",
    )
    max_attempts: int = Field(
        3, ge=1, description="a file whose processing was started this often is failed"
    )
    log_level: str = Field("WARNING", description="the service logs at INFO unless this says more")
    failpoint: str | None = Field(
        None,
        description="testing only: SIGKILL this process at the named step, or with "
        "'raise:<step>[:<dataset>]' raise an unexpected error there "
        "(after_start, after_chunk, after_load, after_lineage, after_aggregate)",
    )
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    stack_name: str | None = Field(
        None, description="shorthand for aws.stack_name (env SALESFLOW_STACK_NAME)"
    )

    @model_validator(mode="after")
    def _stack_name_shorthand(self) -> Settings:
        if self.stack_name:
            self.aws.stack_name = self.stack_name
        return self

    @property
    def bucket_dir(self) -> Path:
        return self.data_dir / "bucket"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "salesflow.db"

    @property
    def scratch_dir(self) -> Path | None:
        """Where decoded copies of input files live while they are read (gzip, Latin-1, bare
        CRs): the data dir's ``scratch/`` locally, so customer data never leaves it; the
        system temp dir (None) on AWS, where there is no data dir."""
        return self.data_dir / "scratch" if self.backend == "local" else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("SALESFLOW_CONFIG", "salesflow.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))


def load_settings(**overrides: Any) -> Settings:
    """Settings with explicit overrides; ``None`` values are ignored so CLI flags pass through.

    Raises ``ConfigError`` naming the one setting (or the TOML line) that is wrong, and
    where it can be set, instead of pydantic's multi-line report or a parser traceback.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _invalid_setting(exc, overrides) from None
    except tomllib.TOMLDecodeError as exc:
        name = os.environ.get("SALESFLOW_CONFIG", "salesflow.toml")
        raise ConfigError(
            f"{name}: not valid TOML: {exc}",
            hint="fix that line, or point SALESFLOW_CONFIG at another file",
        ) from None
    except OSError as exc:
        name = os.environ.get("SALESFLOW_CONFIG", "salesflow.toml")
        raise ConfigError(
            f"{name}: cannot be read: {exc.strerror}",
            hint="fix its permissions, or point SALESFLOW_CONFIG at another file",
        ) from None


def _invalid_setting(exc: ValidationError, overrides: dict[str, Any]) -> ConfigError:
    """The first error of ``exc`` as one line: the setting, the value, what is expected."""
    first = exc.errors()[0]
    path = [str(part) for part in first.get("loc", ())]
    dotted = ".".join(path) or "settings"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    places = [f"SALESFLOW_{'__'.join(path).upper()}", "salesflow.toml"]
    if path and path[0] in overrides and overrides[path[0]] is not None:
        places.insert(0, f"--{path[0].replace('_', '-')}")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(
        f"invalid setting {dotted}{shown}: {first['msg']}{more}",
        hint=f"set it with {' or '.join(places)}",
    )
