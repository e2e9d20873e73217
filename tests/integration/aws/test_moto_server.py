"""The emulator fixture: boto3 reaches it through the environment, and reset wipes it."""

from __future__ import annotations

import json
import os
import urllib.request

import boto3
import pytest
from moto.core.config import default_user_config

from tests.fixtures.moto_server import MotoServer

pytestmark = pytest.mark.aws


def test_environment_points_boto3_at_the_emulator(aws_env: MotoServer) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == aws_env.endpoint
    assert os.environ["MOTO_PORT"] == str(aws_env.port)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="probe")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["probe"]


def test_reset_wipes_resources_and_keeps_the_config(aws_env: MotoServer) -> None:
    boto3.client("s3").create_bucket(Bucket="probe")
    aws_env.reset()
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    # The server runs in this process, so moto's switches are readable directly.
    assert default_user_config["stepfunctions"]["execute_state_machine"] is True
    with urllib.request.urlopen(f"{aws_env.endpoint}/moto-api/config") as response:
        assert json.load(response)["lambda"]["use_docker"] is False
