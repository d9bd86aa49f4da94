"""Fixtures shared by the S3 tests: a real S3-compatible server (moto) on 127.0.0.1, and a client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback, with dummy credentials and AWS_ENDPOINT_URL pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[Any]:
    """A plain botocore client for arranging buckets (the code under test makes its own)."""
    client = botocore.session.get_session().create_client("s3", endpoint_url=s3_endpoint)
    yield client
    client.close()


def new_bucket(s3: Any) -> str:
    """A fresh, uniquely named bucket (the moto server lives for the whole session)."""
    name = f"photos-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
