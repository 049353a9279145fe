"""The official kubernetes client, behind one module.

Nothing here runs at import. The SDK is imported on first use; a missing SDK is a
DependencyError that says how to install it. The default ApiClient is configured once (the
pod's service account inside a cluster, else kubeconfig) and cached; callers may pass their own
(the tests point one at a fake API server). The SDK's ApiException is reached only through
:func:`api_exception` and :func:`status_of`.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from app.core.errors import DependencyError


@functools.cache
def _sdk() -> ModuleType:
    try:
        import kubernetes
        import kubernetes.client.exceptions  # noqa: F401  (ApiException, below)
    except ImportError:
        raise DependencyError("the Kubernetes executor needs the kubernetes package "
                              "(pip install kubernetes)") from None
    return kubernetes


@functools.cache
def default_api_client() -> Any:
    """In-cluster configuration when running in a pod, else the kubeconfig; made once."""
    sdk = _sdk()
    try:
        sdk.config.load_incluster_config()
    except sdk.config.ConfigException:
        sdk.config.load_kube_config()
    return sdk.client.ApiClient()


def batch_api(api_client: Any) -> Any:
    return _sdk().client.BatchV1Api(api_client)


def core_api(api_client: Any) -> Any:
    return _sdk().client.CoreV1Api(api_client)


def job_from_manifest(manifest: dict[str, Any]) -> Any:
    """A rendered batch/v1 Job manifest as the SDK's body for create_namespaced_job."""
    return _sdk().client.V1Job.from_dict(manifest)


def background_delete() -> Any:
    """Delete options that leave the Job's pods to the garbage collector (SIGTERM first)."""
    return _sdk().client.V1DeleteOptions(propagation_policy="Background")


def api_exception() -> type[Exception]:
    """The SDK's ApiException class, for ``except`` clauses."""
    return _sdk().client.exceptions.ApiException


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error, None for any other exception."""
    return exc.status if isinstance(exc, api_exception()) else None  # type: ignore[attr-defined]
