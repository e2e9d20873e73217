"""Configuration: explicit argument > environment > salesflow.toml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from salesflow.config import Settings, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.backend == "local"
    assert settings.batching.min_files == 10 and settings.batching.quiet_seconds == 1200
    assert settings.alerts.threshold_for("sale_events") == 400


def test_env_file_and_argument_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "salesflow.toml").write_text(
        "chunk_rows = 7\n[alerts]\nthreshold = 100.0\n[alerts.thresholds]\nonline_retail = 900.0\n"
    )
    assert Settings().chunk_rows == 7
    assert Settings().alerts.threshold_for("online_retail") == 900
    monkeypatch.setenv("SALESFLOW_CHUNK_ROWS", "8")
    monkeypatch.setenv("SALESFLOW_BATCHING__MIN_FILES", "3")
    assert Settings().chunk_rows == 8 and Settings().batching.min_files == 3
    assert load_settings(chunk_rows=9, data_dir=None).chunk_rows == 9


def test_stack_name_shorthand(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SALESFLOW_STACK_NAME", "sales-prod")
    assert Settings().aws.stack_name == "sales-prod"
