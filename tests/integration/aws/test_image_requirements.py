"""The task image's requirements come from what its modules import: every module it names
must exist (a stale name stops ``salesflow aws image`` before any build)."""

from __future__ import annotations

from salesflow.adapters.aws.image import requirements


def test_the_image_requirements_resolve_and_hold_the_heavy_libraries() -> None:
    names = {r.split("==")[0].lower() for r in requirements()}
    assert {"polars", "boto3", "pydantic-settings"} <= names
