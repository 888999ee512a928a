"""A Dockerfile read into stages and instructions, enough to check what the image does.

Continuation lines are joined, comments and parser directives dropped; exec-form
arguments (``["a", "b"]``) are decoded, shell-form commands split at ``&&`` and with
shell quoting rules.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuation lines joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The arguments of an exec-form instruction (``CMD ["a", "b"]``), else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
        return value

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """A HEALTHCHECK's options (``--interval`` ...) and its exec-form command."""
        match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", self.args.strip())
        assert match, f"line {self.line}: HEALTHCHECK without an exec-form CMD: {self.args}"
        options = dict(o[2:].split("=", 1) for o in match.group(1).split())
        command = json.loads(match.group(2))
        assert isinstance(command, list) and all(isinstance(w, str) for w in command)
        return options, command

    def commands(self) -> list[list[str]]:
        """A shell-form RUN's commands, each split into words (``a && b`` is two)."""
        return [shlex.split(part) for part in re.split(r"\s&&\s", self.args) if part.strip()]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """Every ``ENV key=value`` of the stage, in order (later ones win)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.args):
                key, sep, value = word.partition("=")
                assert sep, f"line {instruction.line}: ENV without '=': {word}"
                values[key] = value
        return values


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        return cls.parse(path.read_text("utf-8"))

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in _instructions(text):
            if instruction.keyword == "FROM":
                words = instruction.args.split()
                words = [w for w in words if not w.startswith("--platform")]
                base = _substitute(words[0], global_args)
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append(Stage(base, name))
            elif not stages:
                assert instruction.keyword == "ARG", f"line {instruction.line}: before FROM"
                key, _, value = instruction.args.partition("=")
                global_args[key.strip()] = value.strip()
            else:
                stages[-1].instructions.append(instruction)
        return cls(global_args, stages)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if continued:
            continue
        joined = " ".join(part for part in pending if part)
        keyword, _, args = joined.partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return found


def _substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], text)
