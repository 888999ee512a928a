"""The compose file's hierarchy run as local processes, the closest this machine gets to
``docker compose up`` without a Docker engine.

Each service built from the project's Dockerfile runs its container command (the image's
entry point with the service's command, else the image's) with the container's
environment (the image's ``ENV``, then the service's ``environment``) on a loopback port,
with only the image's packages importable. A Redis service is a real embedded Redis with
the service's AOF policy; a Redis Cluster member (``--cluster-enabled yes``) one with its
cluster settings too. URLs naming a service (``http://top-88:8000``,
``redis://redis:6379/1``, ``redis+cluster://redis-cluster-1:6379,...``) are pointed at where
that service runs here. Services start in ``depends_on`` order, each once what it depends
on is healthy by its own health check (run as Docker would, in the container's
environment), or, for a one-shot job it depends on, once that job has run to exit 0;
other one-shot jobs are run on demand.

As with compose, only the services of no profile and of the profiles asked for exist;
``up`` names the services to start (with what they depend on), like ``docker compose up
SERVICE...``; without it, all of them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.embedded_cluster import BUS_OFFSET, member_port, redis_cli_binary
from node.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from tests.containers.dockerfile import Dockerfile
from tests.containers.project import ROOT, modules_not_in_image, mounts

RUNNER = Path(__file__).with_name("runtime_only.py")
HEALTHY_WITHIN = 60.0
_URL = re.compile(r"\b(https?|redis)://([A-Za-z0-9_.-]+):(\d+)")
_CLUSTER_URL = re.compile(r"\b(rediss?\+cluster)://([^/?#\s]+)")
_MEMBER = re.compile(r"([A-Za-z0-9_.-]+):(\d+)")
# A cluster member's settings this emulation applies (the rest must be port and AOF);
# the hostname ones only where the local redis-server knows them (Redis 7.0 and later).
CLUSTER_OPTIONS = (
    "cluster-enabled",
    "cluster-config-file",
    "cluster-node-timeout",
    "cluster-require-full-coverage",
)
HOSTNAME_OPTIONS = ("cluster-announce-hostname", "cluster-preferred-endpoint-type")
COMPLETED = {"condition": "service_completed_successfully"}
HEALTHY = {"condition": "service_healthy"}


@dataclass
class Running:
    service: str
    port: int  # the local port standing in for the container's
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def is_image_service(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    return Path(str(build.get("context"))).resolve() == ROOT


def is_one_shot(service: dict[str, Any]) -> bool:
    """A job that runs once and exits: no restart, no health check."""
    health = service.get("healthcheck", {})
    disabled = health.get("disable") is True or health.get("test") in (["NONE"], "NONE")
    return service.get("restart") == "no" and disabled


def profiles(service: dict[str, Any]) -> tuple[str, ...]:
    """The service's profiles; () for a service compose always starts."""
    return tuple(str(p) for p in service.get("profiles", []))


def in_run(service: dict[str, Any], asked: Collection[str]) -> bool:
    """Whether ``docker compose --profile P ...`` (P in ``asked``) has this service."""
    own = profiles(service)
    return not own or any(p in asked for p in own)


def is_redis(service: dict[str, Any]) -> bool:
    """A Redis server (not a job run in the Redis image)."""
    return str(service.get("image", "")).startswith("redis:") and not is_one_shot(service)


def redis_options(service: dict[str, Any]) -> dict[str, str]:
    """``redis-server --name value ...`` of a Redis service's command, as a dict."""
    command = [str(word) for word in service.get("command", [])]
    assert command[:1] == ["redis-server"], f"not a redis-server command: {command}"
    words = command[1:]
    assert len(words) % 2 == 0 and all(w.startswith("--") for w in words[::2]), words
    return {
        name.removeprefix("--"): value for name, value in zip(words[::2], words[1::2], strict=True)
    }


def is_cluster_member(service: dict[str, Any]) -> bool:
    return is_redis(service) and redis_options(service).get("cluster-enabled") == "yes"


def redis_port(service: dict[str, Any]) -> int:
    """The port a Redis service listens on in its container."""
    return int(redis_options(service).get("port", "6379")) if "command" in service else 6379


def redis_major_version() -> int:
    """The major version of the redis-server this machine runs."""
    done = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, timeout=30
    )
    match = re.search(r"\bv=(\d+)\.", done.stdout)
    assert match, done.stdout
    return int(match[1])


class ComposeHierarchy:
    """``docker compose up`` of the image's services, as processes.

    >>> hierarchy = ComposeHierarchy(config, Dockerfile.read(path), tmp)   # doctest: +SKIP
    >>> hierarchy.start(); hierarchy.run_job("setup")                       # doctest: +SKIP
    """

    def __init__(
        self,
        config: dict[str, Any],
        dockerfile: Dockerfile,
        tmp: Path,
        *,
        profiles: Collection[str] = (),
        up: Iterable[str] | None = None,
    ) -> None:
        self.services: dict[str, dict[str, Any]] = {
            name: service
            for name, service in config["services"].items()
            if in_run(service, profiles)
        }
        self.dockerfile = dockerfile
        self.tmp = tmp
        self.blocked = ",".join(modules_not_in_image())
        self.wanted = self._start_order(up)
        self.ports: dict[str, int] = {}
        self.running: dict[str, Running] = {}
        self.redis: dict[str, EmbeddedRedis] = {}
        self.completed: dict[str, subprocess.CompletedProcess[str]] = {}  # first runs
        self.dropped: dict[str, list[str]] = {}  # options a member runs without here
        for name in self.wanted:
            service = self.services[name]
            if is_image_service(service) and not is_one_shot(service):
                self.ports[name] = free_port()

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the services, in ``depends_on`` order; a one-shot job another service
        waits for runs to its end on the way, and must exit 0."""
        awaited = {
            dependency
            for name in self.wanted
            for dependency, rule in self.services[name].get("depends_on", {}).items()
            if rule == COMPLETED
        }
        for name in self.wanted:
            service = self.services[name]
            if name in self.ports:
                self._start_node(name)
            elif is_redis(service):
                self._start_redis(name, service)
            elif name in awaited:
                job = self.run_job(name)
                assert job.returncode == 0, f"{name} failed:\n{job.stdout}{job.stderr}"

    def stop(self) -> None:
        for running in reversed(list(self.running.values())):
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        for running in reversed(list(self.running.values())):
            try:
                running.process.wait(15)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
        for server in self.redis.values():
            server.stop()

    def run_job(self, name: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        """Run a one-shot service to its end, as compose does once its dependencies are
        healthy."""
        service = self.services[name]
        assert is_one_shot(service), f"{name} is not a one-shot job"
        for dependency in service.get("depends_on", {}):
            assert dependency in self.running or dependency in self.redis, dependency
        if is_image_service(service):
            env = self._environment(name, service, port=None)
            command = self._command(service)
        else:
            command = self._job_command(service)
            env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
            # The Redis image's tools: here, the redis-cli beside the redis-server.
            env["PATH"] = f"{Path(redis_cli_binary()).parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(
            command, env=env, cwd=self.tmp, capture_output=True, text=True, timeout=timeout
        )
        self.completed.setdefault(name, done)  # the first run: the one start() waits for
        return done

    # -- what compose would do --------------------------------------------------------

    def localize(self, text: str) -> str:
        """``text`` with every URL naming a service pointed at where it runs here."""

        def local(match: re.Match[str]) -> str:
            scheme, host, port = match.groups()
            if host in self.redis:
                return f"{scheme}://{self.member(host, int(port))}"
            if host in self.ports:
                declared = self._container_port(host)
                assert int(port) == declared, f"{match.group()}: {host} listens on {declared}"
                return f"{scheme}://127.0.0.1:{self.ports[host]}"
            raise AssertionError(f"{match.group()} names no service of the compose file")

        def cluster(match: re.Match[str]) -> str:
            scheme, members = match.groups()
            found = [_MEMBER.fullmatch(member) for member in members.split(",")]
            assert all(found), f"{match.group()}: members are HOST:PORT"
            return f"{scheme}://" + ",".join(self.member(m[1], int(m[2])) for m in found if m)

        return _URL.sub(local, _CLUSTER_URL.sub(cluster, text))

    def member(self, host: str, port: int) -> str:
        """``host:port`` of a Redis service, as it is reached here."""
        assert host in self.redis, f"{host}:{port} names no Redis service that runs"
        declared = redis_port(self.services[host])
        assert port == declared, f"{host}:{port}: {host} listens on {declared}"
        return f"127.0.0.1:{self.redis[host].port}"

    def _start_order(self, up: Iterable[str] | None) -> list[str]:
        order: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
            assert name in self.services, f"{' -> '.join((*path, name))}: not in this run"
            if name in order:
                return
            for dependency in self.services[name].get("depends_on", {}):
                visit(dependency, (*path, name))
            order.append(name)

        for name in self.services if up is None else up:
            visit(name, ())
        return order

    def _start_redis(self, name: str, service: dict[str, Any]) -> None:
        options = redis_options(service) if "command" in service else {}
        policy = options.pop("appendfsync", None)
        assert policy is not None, f"{name}: no --appendfsync in its command"
        assert options.pop("appendonly", None) == "yes", f"{name}: no --appendonly yes"
        options.pop("port", None)  # here: a free port
        if options.get("cluster-enabled") != "yes":
            assert not options, f"{name}: options this emulation does not apply: {options}"
            server = EmbeddedRedis(self.tmp / name, appendfsync=policy)
        else:
            lines = [f"{key} {options.pop(key)}" for key in CLUSTER_OPTIONS if key in options]
            hostname = {key: options.pop(key) for key in HOSTNAME_OPTIONS if key in options}
            assert not options, f"{name}: options this emulation does not apply: {options}"
            if hostname and redis_major_version() >= 7:
                # The name it announces is the service's: here, the loopback address.
                announced = hostname.get("cluster-announce-hostname")
                if announced is not None:
                    assert announced == name, f"{name} announces {announced}"
                    hostname["cluster-announce-hostname"] = "127.0.0.1"
                lines += [f"{key} {value}" for key, value in hostname.items()]
            else:
                self.dropped[name] = sorted(hostname)
            taken = [r.port for r in self.redis.values() if r.port is not None]
            server = EmbeddedRedis(
                self.tmp / name,
                appendfsync=policy,
                databases=1,  # a cluster has database 0 only
                port=member_port("127.0.0.1", [*taken, *(p + BUS_OFFSET for p in taken)]),
                extra_config=lines,
            )
        server.start()
        self.redis[name] = server

    def _start_node(self, name: str) -> None:
        service = self.services[name]
        for dependency, condition in service.get("depends_on", {}).items():
            if condition == COMPLETED:
                job = self.completed.get(dependency)
                assert job is not None and job.returncode == 0, (name, dependency)
                continue
            assert condition == HEALTHY, (name, dependency)
            assert dependency in self.running or dependency in self.redis, (name, dependency)
        env = self._environment(name, service, port=self.ports[name])
        log = self.tmp / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                self._command(service), env=env, cwd=self.tmp, stdout=sink, stderr=sink
            )
        running = Running(name, self.ports[name], env, process, log)
        self.running[name] = running
        self._wait_healthy(running, service)

    def _environment(self, name: str, service: dict[str, Any], port: int | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("IDNODE_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        image_env = self.dockerfile.final.env()
        image_env.pop("PATH", None)  # the image's virtualenv: here, this interpreter's
        container = {**image_env, **{k: str(v) for k, v in service.get("environment", {}).items()}}
        data = self.tmp / "data" / name
        data.mkdir(parents=True, exist_ok=True)
        for key, value in container.items():
            if key == "IDNODE_DATA_DIR":
                value = str(data)
            elif key == "IDNODE_HOST":
                assert value == "0.0.0.0", f"{name}: a container listens on every address"
                value = "127.0.0.1"  # here: loopback only
            elif key == "IDNODE_PORT" and port is not None:
                value = str(port)
            env[key] = self.localize(value)
        env["NOT_IN_IMAGE"] = self.blocked
        return env

    def _container_port(self, name: str) -> int:
        env = {**self.dockerfile.final.env(), **self.services[name].get("environment", {})}
        return int(env["IDNODE_PORT"])

    def _command(self, service: dict[str, Any]) -> list[str]:
        entrypoint = self.dockerfile.final.last("ENTRYPOINT")
        assert entrypoint is not None, "the image has no ENTRYPOINT"
        head = entrypoint.exec_form()
        assert head == ["idnode"], f"unexpected entry point {head}"
        command = service.get("command")
        if command is None:
            cmd = self.dockerfile.final.last("CMD")
            command = cmd.exec_form() if cmd else []
        assert isinstance(command, list), "use the exec form: a list of words"
        words = (self.localize(self._mounted(service, str(w))) for w in command)
        return [sys.executable, str(RUNNER), "idnode", *words]

    def _job_command(self, service: dict[str, Any]) -> list[str]:
        """A job in the Redis image: its command as the image's entry point runs one that
        is not ``redis-server`` (as it is), with the files it mounts read where they are
        and each ``HOST:PORT`` of a Redis service pointed at where that runs here."""
        command = service.get("command")
        assert isinstance(command, list), "use the exec form: a list of words"
        words = [self._mounted(service, str(word)) for word in command]
        assert words[0] != "redis-server", "a job, not a server"
        return [
            self.member(m[1], int(m[2]))
            if (m := _MEMBER.fullmatch(w)) and m[1] in self.redis
            else self.localize(w)
            for w in words
        ]

    def _mounted(self, service: dict[str, Any], word: str) -> str:
        """``word`` with a container path under a bind mount (alone or after ``=``) as
        the path on this machine it mounts."""
        for mount in mounts(service):
            if mount.type == "bind":
                target = re.escape(mount.target.rstrip("/"))
                word = re.sub(rf"(^|=){target}(?=/|$)", rf"\g<1>{mount.source}", word)
        return word

    def _health_command(self, service: dict[str, Any]) -> list[str]:
        test = service.get("healthcheck", {}).get("test")
        if test is None:
            instruction = self.dockerfile.final.last("HEALTHCHECK")
            assert instruction is not None, "no health check in the service or the image"
            test = ["CMD", *instruction.healthcheck()[1]]
        assert test[0] == "CMD", f"a node's health check is an exec-form command: {test}"
        argv = [str(word) for word in test[1:]]
        assert argv[0] == "python", f"a node's health check runs the image's python: {argv}"
        return [sys.executable, str(RUNNER), *argv[1:]]

    def _wait_healthy(self, running: Running, service: dict[str, Any]) -> None:
        command = self._health_command(service)
        deadline = time.monotonic() + HEALTHY_WITHIN
        last = ""
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                raise AssertionError(f"{running.service} exited:\n{_tail(running.log)}")
            probe = subprocess.run(
                command, env=running.env, cwd=self.tmp, capture_output=True, text=True, timeout=30
            )
            if probe.returncode == 0:
                return
            last = probe.stderr.strip()
            time.sleep(0.2)
        raise AssertionError(
            f"{running.service} not healthy in {HEALTHY_WITHIN:g}s: {last}\n{_tail(running.log)}"
        )


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
