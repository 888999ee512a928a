"""The compose file's hierarchy run as local processes, the closest this machine gets to
``docker compose up`` without a Docker engine.

Each service built from the project's Dockerfile runs its container command (the image's
entry point with the service's command, else the image's) with the container's
environment (the image's ``ENV``, then the service's ``environment``) on a loopback port,
with only the image's packages importable. The Redis service is a real embedded Redis
with the service's AOF policy. URLs naming a service (``http://top-88:8000``,
``redis://redis:6379/1``) are pointed at where that service runs here. Services start in
``depends_on`` order, each once what it depends on is healthy by its own health check
(run as Docker would, in the container's environment); one-shot jobs are run on demand.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.embedded_redis import EmbeddedRedis, free_port
from tests.containers.dockerfile import Dockerfile
from tests.containers.project import ROOT, modules_not_in_image

RUNNER = Path(__file__).with_name("runtime_only.py")
HEALTHY_WITHIN = 60.0
_URL = re.compile(r"\b(https?|redis)://([A-Za-z0-9_.-]+):(\d+)")


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


class ComposeHierarchy:
    """``docker compose up`` of the image's services, as processes.

    >>> hierarchy = ComposeHierarchy(config, Dockerfile.read(path), tmp)   # doctest: +SKIP
    >>> hierarchy.start(); hierarchy.run_job("setup")                       # doctest: +SKIP
    """

    def __init__(self, config: dict[str, Any], dockerfile: Dockerfile, tmp: Path) -> None:
        self.services: dict[str, dict[str, Any]] = config["services"]
        self.dockerfile = dockerfile
        self.tmp = tmp
        self.blocked = ",".join(modules_not_in_image())
        self.ports: dict[str, int] = {}
        self.running: dict[str, Running] = {}
        self.redis: dict[str, EmbeddedRedis] = {}
        for name, service in self.services.items():
            if is_image_service(service) and not is_one_shot(service):
                self.ports[name] = free_port()

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        for name in self._start_order():
            service = self.services[name]
            if name in self.ports:
                self._start_node(name)
            elif self._is_redis(service):
                self._start_redis(name, service)

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
        env = self._environment(name, service, port=None)
        return subprocess.run(
            self._command(service),
            env=env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -- what compose would do --------------------------------------------------------

    def localize(self, text: str) -> str:
        """``text`` with every URL naming a service pointed at where it runs here."""

        def local(match: re.Match[str]) -> str:
            scheme, host, port = match.groups()
            if host in self.redis:
                return f"{scheme}://127.0.0.1:{self.redis[host].port}"
            if host in self.ports:
                declared = self._container_port(host)
                assert int(port) == declared, f"{match.group()}: {host} listens on {declared}"
                return f"{scheme}://127.0.0.1:{self.ports[host]}"
            raise AssertionError(f"{match.group()} names no service of the compose file")

        return _URL.sub(local, text)

    def _start_order(self) -> list[str]:
        order: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
            if name in order:
                return
            for dependency in self.services[name].get("depends_on", {}):
                visit(dependency, (*path, name))
            order.append(name)

        for name in self.services:
            visit(name, ())
        return order

    def _is_redis(self, service: dict[str, Any]) -> bool:
        return str(service.get("image", "")).startswith("redis:")

    def _start_redis(self, name: str, service: dict[str, Any]) -> None:
        command = [str(word) for word in service.get("command", [])]
        policy = command[command.index("--appendfsync") + 1] if "--appendfsync" in command else None
        assert policy is not None, f"{name}: no --appendfsync in its command"
        server = EmbeddedRedis(self.tmp / name, appendfsync=policy)
        server.start()
        self.redis[name] = server

    def _start_node(self, name: str) -> None:
        service = self.services[name]
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition.get("condition") == "service_healthy", (name, dependency)
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
        return [sys.executable, str(RUNNER), "idnode", *(self.localize(str(w)) for w in command)]

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
