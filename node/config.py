"""Node configuration: one typed object per process, read once from arguments and env.

Every setting has a command-line option and an ``IDNODE_*`` environment variable; the
option wins. This is the only module that reads the environment.

=====================  ========================  ==========================================
option                 environment               meaning
=====================  ========================  ==========================================
--role                 IDNODE_ROLE               secondary | enterprise
--prefix               IDNODE_PREFIX             the prefix this node holds, e.g. 88.100
--host                 IDNODE_HOST               listen address (default 127.0.0.1)
--port                 IDNODE_PORT               listen port (default 8001)
--data-dir             IDNODE_DATA_DIR           embedded Redis data (default ./.idnode/<node>)
--redis-url            IDNODE_REDIS_URL          use this Redis instead of an embedded one
--admin-secret         IDNODE_ADMIN_SECRET       secret of 300:0.NA/<prefix>
--public-url           IDNODE_PUBLIC_URL         URL other nodes and clients use for this node
--appendfsync          IDNODE_APPENDFSYNC        embedded Redis AOF policy: always|everysec|no
--max-body-bytes       IDNODE_MAX_BODY_BYTES     request body limit (413 above it)
--log-level            IDNODE_LOG_LEVEL          debug | info | warning | error
--access-log           IDNODE_ACCESS_LOG         log every request (off by default: hot path)
=====================  ========================  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from registry.errors import ConfigError, IdnodeError
from registry.identifier import Prefix
from registry.limits import Limits

ENV_PREFIX = "IDNODE_"
APPENDFSYNC_POLICIES = ("always", "everysec", "no")
LOG_LEVELS = ("debug", "info", "warning", "error")


class Role(StrEnum):
    """What a node does in the hierarchy (SPEC §3)."""

    SECONDARY = "secondary"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node process needs, validated.

    >>> cfg = NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, env={})
    >>> cfg.name, cfg.public_url
    ('secondary-88.100', 'http://127.0.0.1:8001')
    """

    role: Role
    prefix: Prefix
    host: str = "127.0.0.1"
    port: int = 8001
    data_dir: Path | None = None
    redis_url: str | None = None
    admin_secret: str | None = None
    public_url_override: str | None = None
    appendfsync: str = "always"
    log_level: str = "info"
    access_log: bool = False
    limits: Limits = field(default_factory=Limits)

    @property
    def name(self) -> str:
        return f"{self.role.value}-{self.prefix.text}"

    @property
    def public_url(self) -> str:
        if self.public_url_override:
            return self.public_url_override.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def embedded_data_dir(self) -> Path:
        return self.data_dir or Path(".idnode") / self.name

    @classmethod
    def from_sources(cls, args: Mapping[str, object | None], env: Mapping[str, str]) -> NodeConfig:
        """Build from parsed options (None = not given) and the environment."""

        def get(name: str) -> str | None:
            value = args.get(name)
            if value is None or value is False:
                value = env.get(ENV_PREFIX + name.upper())
            return None if value is None else str(value)

        def required(name: str) -> str:
            value = get(name)
            if not value:
                raise ConfigError(
                    f"missing setting {name!r}: pass --{name.replace('_', '-')} "
                    f"or set {ENV_PREFIX}{name.upper()}"
                )
            return value

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = (get(name) or default).lower()
            if value not in allowed:
                raise ConfigError(f"setting {name!r} must be one of {', '.join(allowed)}")
            return value

        role = Role(choice("role", tuple(r.value for r in Role), ""))
        try:
            prefix = Prefix.parse(required("prefix"))
        except IdnodeError as exc:
            raise ConfigError(f"setting 'prefix': {exc.message}") from None
        data_dir = get("data_dir")
        return cls(
            role=role,
            prefix=prefix,
            host=get("host") or "127.0.0.1",
            port=_int_setting("port", get("port"), 8001, low=0, high=65535),
            data_dir=Path(data_dir) if data_dir else None,
            redis_url=get("redis_url") or None,
            admin_secret=get("admin_secret") or None,
            public_url_override=get("public_url") or None,
            appendfsync=choice("appendfsync", APPENDFSYNC_POLICIES, "always"),
            log_level=choice("log_level", LOG_LEVELS, "info"),
            access_log=(get("access_log") or "").lower() in ("1", "true", "yes", "on"),
            limits=Limits(
                max_body_bytes=_int_setting(
                    "max_body_bytes", get("max_body_bytes"), Limits().max_body_bytes, low=1024
                )
            ),
        )


def _int_setting(name: str, raw: str | None, default: int, *, low: int, high: int = 2**40) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"setting {name!r} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"setting {name!r} must be between {low} and {high}, got {value}")
    return value
