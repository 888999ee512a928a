"""The node image's Dockerfile: stages, user, health check, what it installs, and the
containers guide's build command."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import node.config
from node.config import NodeConfig
from node.probe import TIMEOUT
from tests.containers.dockerfile import Dockerfile, Instruction
from tests.containers.hierarchy import RUNNER, is_image_service, is_one_shot
from tests.containers.project import ROOT, guide_section, modules_not_in_image, pyproject

VENV = "/opt/idnode"


def pip_installs(dockerfile: Dockerfile) -> list[tuple[str | None, list[str]]]:
    """Every ``pip install`` of every stage: (stage name, its arguments)."""
    found = []
    for stage in dockerfile.stages:
        for run in stage.all("RUN"):
            for words in run.commands():
                pip = words[:2] == ["pip", "install"] or words[:4] == [
                    "python",
                    "-m",
                    "pip",
                    "install",
                ]
                if pip:
                    found.append((stage.name, words[words.index("install") + 1 :]))
    return found


def test_two_stages_on_a_pinned_slim_python(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) == 2
    builder, final = dockerfile.stages
    assert builder.name == "builder"
    assert builder.base == final.base == dockerfile.global_args["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+", final.base)
    assert match, f"pin the base image's Python version and slim variant: {final.base}"
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", pyproject()["project"]["requires-python"])
    assert minimum
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def test_the_final_stage_holds_the_virtualenv_and_nothing_else(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    copies = final.all("COPY")
    assert [c.args.split() for c in copies] == [["--from=builder", VENV, VENV]]
    assert not final.all("ADD")
    installs = [words for words in pip_installs(dockerfile) if words[0] is None]
    assert not installs, f"the final stage installs nothing itself: {installs}"
    assert final.env()["PATH"].startswith(f"{VENV}/bin:")
    builder = dockerfile.stage("builder")
    assert any(
        words[:4] == ["python", "-m", "venv", VENV]
        for r in builder.all("RUN")
        for words in r.commands()
    )


def test_it_runs_as_an_unprivileged_user(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    user = final.last("USER")
    assert user is not None, "the final stage sets no USER: it would run as root"
    name, _, group = user.args.partition(":")
    assert name not in ("root", "0") and group not in ("root", "0"), user.args
    # The user exists in the image, with that uid, and owns the data folder.
    created = " ".join(" ".join(w) for r in final.all("RUN") for w in r.commands())
    assert re.search(rf"useradd .*--uid {re.escape(name)}\b", created), created
    assert "--owner=idnode" in created and "/data" in created
    # Nothing after USER switches back.
    assert final.instructions.index(user) > max(
        final.instructions.index(r) for r in final.all("RUN")
    )


def test_the_image_is_configured_by_environment(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    env = final.env()
    settings = {k: v for k, v in env.items() if k.startswith("IDNODE_")}
    documented = set(re.findall(r"IDNODE_[A-Z_]+", node.config.__doc__ or ""))
    assert set(settings) <= documented, set(settings) - documented
    assert settings["IDNODE_HOST"] == "0.0.0.0"
    config = NodeConfig.from_sources({"role": "top", "prefix": "88"}, settings)
    expose = final.last("EXPOSE")
    assert expose is not None and expose.args == str(config.port)
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None and entrypoint.exec_form() == ["idnode"]
    assert cmd is not None and cmd.exec_form() == ["serve"]
    console = pyproject()["project"]["scripts"]["idnode"]
    assert console == "node.cli:main"


def test_it_installs_exactly_the_runtime_dependencies(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    project = pyproject()["project"]
    installs = pip_installs(dockerfile)
    assert installs == [
        ("builder", ["--requirement", "requirements.txt"]),
        ("builder", ["--no-deps", "."]),
    ]
    # requirements.txt is written from pyproject.toml by the command before: run it on
    # the real pyproject.toml and compare.
    builder = dockerfile.stage("builder")
    (writer,) = [
        words
        for run in builder.all("RUN")
        for words in run.commands()
        if words[-2:] == [">", "requirements.txt"]
    ]
    assert writer[:2] == ["python", "-c"] and len(writer) == 5, writer
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    written = subprocess.run(
        [sys.executable, "-c", writer[2]], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert written == project["dependencies"]
    # Copied before it runs; the package comes after, and pip check proves the set whole.
    copies = [i.args for i in builder.instructions if i.keyword in ("COPY", "RUN")]
    assert copies.index("pyproject.toml ./") < next(
        n for n, a in enumerate(copies) if "requirements.txt" in a
    )
    assert any(words == ["pip", "check"] for r in builder.all("RUN") for words in r.commands())
    # No extra is asked for, and nothing only they install is named.
    extras = {
        Requirement(r).name.lower()
        for reqs in project["optional-dependencies"].values()
        for r in reqs
    } - {project["name"]}
    runs = " ".join(r.args.lower() for s in dockerfile.stages for r in s.all("RUN"))
    assert "[" not in " ".join(" ".join(args) for _, args in installs)
    assert not {name for name in extras if re.search(rf"\b{re.escape(name)}\b", runs)}


def test_it_copies_every_package_pyproject_declares(dockerfile: Dockerfile) -> None:
    config = pyproject()
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").exists() and any(fnmatch.fnmatch(path.name, p) for p in patterns)
    }
    assert packages >= {"node", "registry", "resolver", "loadtest"}
    copied = {
        i.args.split()[0] for i in dockerfile.stage("builder").all("COPY") if "--from" not in i.args
    }
    assert copied == packages | {"pyproject.toml", config["project"]["readme"]}


def test_dockerignore_keeps_out_what_the_image_does_not_need(dockerfile: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".git", ".venv", "tests", "reports", ".idnode"):
        assert needed in patterns, needed
    copied = [i.args.split()[0] for i in dockerfile.stage("builder").all("COPY")]
    for source in copied:
        assert not any(fnmatch.fnmatch(source, p) for p in patterns), source


class _Healthz(BaseHTTPRequestHandler):
    """Answers ``/healthz`` like a node (or as told), and records every path asked."""

    paths: list[str] = []
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).paths.append(self.path)
        ok = self.path == "/healthz" and type(self).status == 200
        body = json.dumps({"status": "ok"} if ok else {"status": "unavailable"}).encode()
        self.send_response(type(self).status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[ThreadingHTTPServer]:
    _Healthz.paths = []
    _Healthz.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def run_healthcheck(instruction: Instruction, port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK as Docker runs it: its command, in the container's
    environment (a secondary node's settings), with the image's packages only."""
    _, command = instruction.healthcheck()
    assert command[0] == "python"
    env = {
        "PATH": "/usr/bin:/bin",
        "IDNODE_ROLE": "secondary",
        "IDNODE_PREFIX": "88.100",
        "IDNODE_HOST": "0.0.0.0",
        "IDNODE_PORT": str(port),
        "NOT_IN_IMAGE": ",".join(modules_not_in_image()),
    }
    return subprocess.run(
        [sys.executable, str(RUNNER), *command[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_health_check_asks_healthz(
    dockerfile: Dockerfile, healthz_server: ThreadingHTTPServer
) -> None:
    instruction = dockerfile.final.last("HEALTHCHECK")
    assert instruction is not None, "the image has no HEALTHCHECK"
    options, _ = instruction.healthcheck()
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    assert float(options["timeout"].removesuffix("s")) > TIMEOUT  # the probe gives up first
    port = healthz_server.server_address[1]

    healthy = run_healthcheck(instruction, port)
    assert healthy.returncode == 0, healthy.stderr
    assert _Healthz.paths == ["/healthz"]

    _Healthz.status = 503
    failing = run_healthcheck(instruction, port)
    assert failing.returncode == 1
    assert "HTTP 503" in failing.stderr

    healthz_server.shutdown()
    healthz_server.server_close()
    gone = run_healthcheck(instruction, port)
    assert gone.returncode == 1
    assert "did not answer" in gone.stderr


def test_the_compose_nodes_use_the_image_health_check(
    dockerfile: Dockerfile, compose: dict[str, Any]
) -> None:
    instruction = dockerfile.final.last("HEALTHCHECK")
    assert instruction is not None
    _, command = instruction.healthcheck()
    for name, service in compose["services"].items():
        if is_image_service(service) and not is_one_shot(service):
            assert service["healthcheck"]["test"] == ["CMD", *command], name


def test_only_the_image_packages_are_importable_under_the_runner() -> None:
    """The compose hierarchy runs under ``runtime_only.py``; it must really keep the bench
    and dev packages out of reach, and nothing the runtime needs."""
    blocked = modules_not_in_image()
    assert {"locust", "matplotlib", "pytest", "httpx", "hypothesis"} <= set(blocked)
    assert not {"fastapi", "uvicorn", "redis", "aiohttp", "yaml", "node"} & set(blocked)
    env = {"PATH": "/usr/bin:/bin", "NOT_IN_IMAGE": ",".join(blocked)}
    locust = subprocess.run(
        [sys.executable, str(RUNNER), "-m", "loadtest.locustfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert locust.returncode != 0
    assert "import of locust halted" in locust.stderr, locust.stderr
    help_text = subprocess.run(
        [sys.executable, str(RUNNER), "idnode", "setup", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "PORT=URL" in help_text.stdout


def test_the_guide_build_command_builds_what_compose_runs(compose: dict[str, Any]) -> None:
    where, section = guide_section()
    builds = [
        shlex.split(line.split("#", 1)[0])
        for line in section.splitlines()
        if line.lstrip().startswith("docker build ")
    ]
    assert builds, f"{where} shows no `docker build` command"
    images = {
        (s["image"], Path(s["build"]["context"]).resolve(), s["build"]["dockerfile"])
        for s in compose["services"].values()
        if is_image_service(s)
    }
    assert len(images) == 1, images
    for words in builds:
        tag = words[words.index("-t") + 1]
        dockerfile = words[words.index("-f") + 1] if "-f" in words else "Dockerfile"
        context = (ROOT / words[-1]).resolve()
        assert {(tag, context, dockerfile)} == images, words
    assert "docker compose up" in section
