"""S3 (and S3-compatible stores) through boto3, behind one module.

boto3 is imported on first use; a missing install is a DependencyError saying how to add it.
Credentials, region and endpoint come from boto3's own chain (AWS_* variables, the pod's web
identity, ``AWS_ENDPOINT_URL_S3`` for MinIO or a moto server), so nothing here is configured
twice.
"""

from __future__ import annotations

from typing import Any

from app.core.errors import DependencyError


def client() -> Any:
    """A new S3 client (boto3 clients are thread-safe; callers keep the one they make)."""
    try:
        import boto3
    except ImportError:
        raise DependencyError("checkpoints on S3 need the boto3 package "
                              "(pip install 'oppen[aws]')") from None
    return boto3.client("s3")


def is_missing(exc: Exception) -> bool:
    """An error that says the object (or bucket) is not there."""
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
