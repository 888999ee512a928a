"""The container health probe: ``python -m node.probe`` exits 0 when this node answers
``/healthz`` and 1 otherwise (the image's ``HEALTHCHECK`` and the compose file's).

It finds the node the way the node finds its settings, from the ``IDNODE_*``
environment (:class:`~node.config.NodeConfig`), and asks it over loopback when it
listens on every address. Standard library only, so a probe every few seconds costs a
short-lived interpreter and nothing else.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request

from node.config import NodeConfig
from registry.errors import ConfigError

TIMEOUT = 3.0  # seconds; Docker's own --timeout kills a probe that hangs longer
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def healthz_url(config: NodeConfig) -> str:
    """Where this node answers ``/healthz`` from inside its own container.

    >>> healthz_url(NodeConfig.from_sources({"role": "top", "prefix": "88"},
    ...                                     {"IDNODE_HOST": "0.0.0.0", "IDNODE_PORT": "8000"}))
    'http://127.0.0.1:8000/healthz'
    """
    host = _ANY.get(config.host, config.host)
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if config.tls_cert else "http"
    return f"{scheme}://{host}:{config.port}/healthz"


def readiness(url: str, timeout: float = TIMEOUT) -> object:
    """The JSON body ``url`` (a ``/readyz``) answers, whatever its status; None when it
    does not answer JSON."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=unverified) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def probe(url: str, timeout: float = TIMEOUT) -> str | None:
    """None when ``url`` answers 200 with ``{"status": "ok"}``, else what went wrong."""
    # The node's certificate names its public host, not the loopback address asked
    # here; the probe only asks whether its own process answers, so it does not verify.
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=unverified) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {getattr(exc, 'reason', exc)}"
    except ValueError:
        return f"{url} answered something that is not JSON"
    if not isinstance(body, dict) or body.get("status") != "ok":
        return f"{url} answered {body!r}"
    return None


def main() -> int:
    try:
        config = NodeConfig.from_sources({}, os.environ)
    except ConfigError as exc:
        print(f"unhealthy: {exc.message}", file=sys.stderr)
        return 1
    problem = probe(healthz_url(config))
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
