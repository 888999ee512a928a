"""Configuration is read once, from options then IDNODE_* variables, and fails loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.config import NodeConfig
from registry.errors import ConfigError
from registry.hierarchy import Role


def test_options_win_over_environment() -> None:
    config = NodeConfig.from_sources(
        {"role": "secondary", "prefix": "88.100", "port": 9000},
        env={"IDNODE_PORT": "7000", "IDNODE_ADMIN_SECRET": "from-env", "IDNODE_ROLE": "enterprise"},
    )
    assert config.role is Role.SECONDARY and config.port == 9000
    assert config.admin_secret == "from-env"
    assert config.embedded_data_dir == Path(".idnode/secondary-88.100")
    assert config.appendfsync == "always"


def test_environment_alone_is_enough() -> None:
    config = NodeConfig.from_sources(
        {},
        env={
            "IDNODE_ROLE": "enterprise",
            "IDNODE_PREFIX": "88.100.3",
            "IDNODE_HOST": "::1",
            "IDNODE_MAX_BODY_BYTES": "2048",
        },
    )
    assert config.public_url == "http://[::1]:8001"
    assert config.limits.max_body_bytes == 2048


def test_workers_and_the_socket_a_worker_inherits() -> None:
    plain = NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, env={})
    assert (plain.workers, plain.worker_fd) == (1, None)
    worker = NodeConfig.from_sources(
        {"role": "secondary", "prefix": "88.100", "workers": 4},
        env={"IDNODE_WORKERS": "2", "IDNODE_WORKER_FD": "5"},
    )
    assert (worker.workers, worker.worker_fd) == (4, 5)


def test_the_cap_on_another_nodes_answer() -> None:
    plain = NodeConfig.from_sources({"role": "top", "prefix": "88"}, env={})
    assert plain.max_upstream_bytes == 1 << 20
    given = NodeConfig.from_sources(
        {"role": "top", "prefix": "88", "max_upstream_bytes": 4096},
        env={"IDNODE_MAX_UPSTREAM_BYTES": "8192"},
    )
    assert given.max_upstream_bytes == 4096


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ({"prefix": "88.100"}, {}, "role"),
        ({"role": "secondary"}, {}, "IDNODE_PREFIX"),
        ({"role": "secondary", "prefix": "88.x"}, {}, "prefix"),
        ({"role": "secondary", "prefix": "88.100"}, {"IDNODE_PORT": "eighty"}, "port"),
        (
            {"role": "secondary", "prefix": "88.100"},
            {"IDNODE_APPENDFSYNC": "sometimes"},
            "appendfsync",
        ),
        ({"role": "boss", "prefix": "88.100"}, {}, "role"),
        ({"role": "secondary", "prefix": "88.100", "workers": 0}, {}, "workers"),
        ({"role": "secondary", "prefix": "88.100"}, {"IDNODE_WORKERS": "65"}, "workers"),
        ({"role": "top", "prefix": "88"}, {"IDNODE_MAX_UPSTREAM_BYTES": "10"}, "max_upstream"),
        ({"role": "secondary", "prefix": "88.100"}, {"IDNODE_PREFIX_SHARDS": "3"}, "power of two"),
        ({"role": "secondary", "prefix": "88.100", "prefix_shards": 8192}, {}, "prefix_shards"),
        (
            {"role": "secondary", "prefix": "88.100", "record_buckets": 6, "prefix_shards": 4},
            {},
            "record buckets (6) must be a multiple of prefix shards (4)",
        ),
    ],
)
def test_bad_settings_are_named(args, env, named) -> None:
    with pytest.raises(ConfigError) as caught:
        NodeConfig.from_sources(args, env=env)
    assert named in caught.value.message


def test_cli_reports_a_missing_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node", "serve", "--role", "secondary"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "missing setting 'prefix'" in result.stderr


@pytest.mark.parametrize("prefix", ["21.T14999", "88.T1", "0.NA"])
def test_a_node_prefix_must_follow_the_national_policy(prefix: str) -> None:
    """Valid Handle prefixes, but not ones this hierarchy allocates: the node refuses to
    start, naming the setting and the rule."""
    with pytest.raises(ConfigError) as caught:
        NodeConfig.from_sources({"role": "secondary", "prefix": prefix}, env={})
    message = caught.value.message
    assert message.startswith(f"setting 'prefix': Invalid prefix {prefix!r}: segment")
    assert "is not ASCII digits; this hierarchy's prefixes are, e.g. 88.100.1" in message


def test_anonymous_session_limits_are_settings() -> None:
    defaults = NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, env={})
    assert (defaults.anonymous_session_ttl, defaults.anonymous_sessions_per_minute) == (60, 60)
    from_env = NodeConfig.from_sources(
        {"role": "secondary", "prefix": "88.100", "anonymous_session_ttl": 20},
        env={
            "IDNODE_ANONYMOUS_SESSION_TTL": "30",
            "IDNODE_ANONYMOUS_SESSIONS_PER_MINUTE": "5",
        },
    )
    assert (from_env.anonymous_session_ttl, from_env.anonymous_sessions_per_minute) == (20, 5)
    for name, raw in (("anonymous_session_ttl", "0"), ("anonymous_sessions_per_minute", "x")):
        with pytest.raises(ConfigError) as caught:
            NodeConfig.from_sources({"role": "secondary", "prefix": "88.100", name: raw}, env={})
        assert name in caught.value.message


def test_the_anonymous_session_options_show_their_defaults() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "node", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(run.stdout.split())
    assert "--anonymous-session-ttl SECONDS" in text and "(default 60)" in text
    assert "--anonymous-sessions-per-minute N" in text
    assert "without credentials" in text


def test_a_prefix_spreads_over_the_shards_asked_for() -> None:
    args = {"role": "secondary", "prefix": "88.100"}
    assert NodeConfig.from_sources(args, env={}).prefix_shards == 1
    sharded = NodeConfig.from_sources(args, env={"IDNODE_PREFIX_SHARDS": "16"})
    assert sharded.prefix_shards == 16 and sharded.record_buckets % 16 == 0
