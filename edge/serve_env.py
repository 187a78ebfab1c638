"""The start-up check of a service started alone: ``BENTOML_SERVE_SERVICE_NAME`` and ``BENTOML_SERVE_DEPENDS``.

The Bento image's entrypoint (``start-http-server``) serves the one service
``BENTOML_SERVE_SERVICE_NAME`` names and reaches its dependencies at the URLs
of ``BENTOML_SERVE_DEPENDS`` (space-separated ``name=url`` pairs), which is
how each service runs as its own Kubernetes Deployment (``deploy/k8s/``).
Both are the public environment variables of BentoML's CLI options.

Why a check of our own: a dependency that ``BENTOML_SERVE_DEPENDS`` misses or
misspells is not an error to BentoML, which then builds that service *inside*
the calling process: the API would load the Two-Tower model itself, silently,
with the memory and CPU of a runner. A URL without ``http://`` fails only on
the first call, as a fallback to the next model. Here each of these stops the
process at import, before any worker starts, with a message naming the
variable and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import bentoml

SERVICE_NAME_VAR = "BENTOML_SERVE_SERVICE_NAME"
DEPENDS_VAR = "BENTOML_SERVE_DEPENDS"
URL_SCHEMES = ("http", "https")


class ServeEnvError(ValueError):
    """The serve variables do not fit the Bento's services; the message names the variable."""


def dependency_graph(root: bentoml.Service[object]) -> dict[str, list[str]]:
    """Every service of the Bento (``root`` first) -> the names of the services it depends on."""
    return {
        name: [dep.on.name for dep in service.dependencies.values() if dep.on is not None]
        for name, service in root.all_services().items()
    }


def _parse_depends(raw: str) -> dict[str, str]:
    given: dict[str, str] = {}
    for item in raw.split():
        name, _, url = item.partition("=")
        parts = urlsplit(url)
        if not name or parts.scheme not in URL_SCHEMES or not parts.hostname:
            raise ServeEnvError(f"{DEPENDS_VAR}: {item!r} is not NAME=http://HOST:PORT")
        given[name] = url
    return given


def check_serve_env(environ: Mapping[str, str], graph: Mapping[str, list[str]]) -> None:
    """Raise ``ServeEnvError`` unless the serve variables name services and dependencies of ``graph``.

    ``graph`` is ``dependency_graph`` of the Bento's root service (its first
    key). Unset variables are ``bentoml serve``: every service in one tree,
    nothing to check.
    """
    name = environ.get(SERVICE_NAME_VAR, "").strip()
    given = _parse_depends(environ.get(DEPENDS_VAR, ""))
    if name and name not in graph:
        services = ", ".join(graph)
        raise ServeEnvError(f"{SERVICE_NAME_VAR}={name!r} is not a service of this Bento; its services: {services}")
    served = name or next(iter(graph))
    needed = graph[served]
    unknown = sorted(set(given) - set(needed))
    if unknown:
        raise ServeEnvError(
            f"{DEPENDS_VAR} names {', '.join(unknown)}, which {served} does not depend on; "
            f"its dependencies: {', '.join(needed) or '(none)'}"
        )
    missing = [dep for dep in needed if dep not in given]
    if name and missing:
        raise ServeEnvError(
            f"{SERVICE_NAME_VAR}={name} runs alone, so {DEPENDS_VAR} must give the URL of {', '.join(missing)} "
            "(without it BentoML would run that service inside this process)"
        )
