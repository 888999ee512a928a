"""The project's container files as the tests read them: the compose file as
``docker-compose config`` resolves it, the containers guide (docs/guides/containers.md),
pyproject.toml and the packages the node image holds."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
GUIDE = ROOT / "docs" / "guides" / "containers.md"


def docker_compose() -> str | None:
    """The ``docker-compose`` binary, installed by ``make compose-tool`` (Debian's
    package) when missing; None only where it is missing and there is no apt-get."""
    found = shutil.which("docker-compose")
    if found is None and shutil.which("apt-get"):
        subprocess.run(["make", "--no-print-directory", "compose-tool"], cwd=ROOT, check=True)
        found = shutil.which("docker-compose")
        assert found, "make compose-tool did not install docker-compose"
    return found


def compose_config(
    binary: str, *extra: str, file: Path = COMPOSE_FILE, profile: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of the project's compose file (or another), with a
    profile or not, in a clean environment (no COMPOSE_* or DOCKER_* settings of the
    caller's)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(ROOT)}
    profiles = ["--profile", profile] if profile else []
    return subprocess.run(
        [
            binary,
            "--file",
            str(file),
            "--project-directory",
            str(ROOT),
            *profiles,
            "config",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def load_compose(binary: str) -> dict[str, Any]:
    result = compose_config(binary)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def guide_section() -> tuple[Path, str]:
    """The containers guide: the page where a user reads how to build and run them."""
    return GUIDE, GUIDE.read_text("utf-8")


def guide_services(section: str) -> dict[str, str]:
    """The services table of the section: service name -> its row."""
    rows: dict[str, str] = {}
    in_table = False
    for line in section.splitlines():
        if re.match(r"\|\s*service\s*\|", line):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        match = re.match(r"\|\s*`([A-Za-z0-9][A-Za-z0-9_.-]*)`\s*\|", line)
        if in_table and match:
            rows[match.group(1)] = line
    assert rows, "the containers section has no services table (| service | ... |)"
    return rows


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(requirements: list[str]) -> set[str]:
    """The distributions ``pip install`` of ``requirements`` brings in, as installed in
    this environment (normalised names; extras and markers followed)."""
    project = pyproject()["project"]
    todo = [Requirement(r) for r in requirements]
    seen: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement = todo.pop()
        name = _normal(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in done:
            continue
        done.add(key)
        if name == _normal(project["name"]):  # idnode[bench] inside dev
            for extra in requirement.extras:
                todo.extend(Requirement(r) for r in project["optional-dependencies"][extra])
            continue
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not for this platform
        seen.add(name)
        for text in requires:
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(
                marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                todo.append(dependency)
    return seen


def modules_not_in_image() -> list[str]:
    """Top-level modules that only the bench and dev extras install: what a node in the
    image cannot import."""
    project = pyproject()["project"]
    runtime = installed_closure(project["dependencies"])
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    only_extras = installed_closure(extras) - runtime
    providers = importlib.metadata.packages_distributions()
    return sorted(
        module
        for module, dists in providers.items()
        if module.isidentifier() and all(_normal(d) in only_extras for d in dists)
    )


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: str
    target: int


@dataclass(frozen=True)
class Mount:
    type: str  # bind | volume
    source: str
    target: str
    read_only: bool


def ports(service: dict[str, Any]) -> list[Port]:
    """A service's published ports, from the short syntax ``docker-compose`` 1.x prints
    (``127.0.0.1:8000:8000/tcp``) or the long one of the v2 plugin."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append(
                Port(port.get("host_ip", ""), str(port.get("published", "")), int(port["target"]))
            )
            continue
        parts = str(port).partition("/")[0].rsplit(":", 2)
        parts = [""] * (3 - len(parts)) + parts
        found.append(Port(parts[0], parts[1], int(parts[2])))
    return found


def mounts(service: dict[str, Any]) -> list[Mount]:
    """A service's volumes, from the short syntax (``/abs/src:/target:ro``,
    ``name:/target:rw``) or the long one."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found.append(
                Mount(
                    volume["type"],
                    str(volume["source"]),
                    str(volume["target"]),
                    bool(volume.get("read_only", False)),
                )
            )
            continue
        source, target, *mode = str(volume).split(":")
        kind = "bind" if source.startswith(("/", ".")) else "volume"
        found.append(Mount(kind, source, target, mode == ["ro"]))
    return found
