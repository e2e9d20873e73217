"""All configuration in one place: explicit argument > env var (``SALESFLOW_``) > file > default.

Nested settings use ``__``: ``SALESFLOW_ALERTS__THRESHOLD=500``,
``SALESFLOW_BATCHING__MIN_FILES=10``. A TOML file named by ``SALESFLOW_CONFIG`` (default
``salesflow.toml`` in the working directory, if present) sits below the environment.
Nothing else in salesflow reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class BatchingSettings(BaseModel):
    """Smart batching for products/orders/order_items (seed 004)."""

    datasets: tuple[str, ...] = ("products", "orders", "order_items")
    min_files: int = Field(10, ge=1, description="run at once when this many files wait")
    min_trio: int = Field(3, ge=1, description="files needed, one of each type, for the timer")
    quiet_seconds: float = Field(1200.0, ge=0, description="run after this long with no new file")
    max_files: int = Field(
        1000, ge=1, description="files per batch at most (AWS: one execution); the rest wait"
    )


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
    """High-value sale alerts (seed 003)."""

    threshold: float = Field(400.0, ge=0)
    thresholds: dict[str, float] = Field(default_factory=dict, description="per dataset")
    sinks: list[SinkName] = Field(default_factory=lambda: list[SinkName](["log", "jsonl"]))
    jsonl_path: Path | None = None
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    max_attempts: int = Field(5, ge=1)

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


class Settings(BaseSettings):
    """salesflow's settings. Build with ``Settings(data_dir=...)`` to override anything."""

    model_config = SettingsConfigDict(
        env_prefix="SALESFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file="salesflow.toml",
    )

    backend: Literal["local", "aws"] = "local"
    data_dir: Path = Path("salesflow-data")
    chunk_rows: int = Field(250_000, ge=1, description="rows validated at a time (bounds memory)")
    poll_seconds: float = Field(1.0, gt=0, description="inbox polling fallback interval")
    log_level: str = Field("WARNING", description="the service logs at INFO unless this says more")
    failpoint: str | None = Field(
        None,
        description="testing only: SIGKILL this process at the named step "
        "(after_start, after_chunk, after_load, after_aggregate, after_lineage)",
    )
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
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
    """Settings with explicit overrides; ``None`` values are ignored so CLI flags pass through."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
