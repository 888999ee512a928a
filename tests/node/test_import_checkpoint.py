"""The import checkpoint and its in-order frontier: pure, and the atomic file."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.import_checkpoint import Checkpoint, Frontier, Source, load, save
from registry.errors import ConfigError


def test_answered_chunks_are_released_only_in_order() -> None:
    frontier: Frontier[int] = Frontier(first=0)
    assert frontier.answered(2, 2) == []
    assert frontier.answered(1, 1) == []
    assert frontier.pending == 2
    assert frontier.answered(0, 0) == [0, 1, 2]
    assert frontier.answered(3, 3) == [3]
    assert frontier.pending == 0


def test_a_checkpoint_round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "ids.checkpoint"
    assert load(path) is None
    cp = Checkpoint(Source("/x/ids.csv", 900, 7), 12, 400, 10, 1, 60)
    save(path, cp)
    assert load(path) == cp
    save(path, Checkpoint(cp.source, line=20))
    assert load(path) == Checkpoint(cp.source, line=20)
    assert [p.name for p in tmp_path.iterdir()] == ["ids.checkpoint"]  # no temporary left


def test_a_damaged_checkpoint_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    path.write_bytes(b'{"line": 3')
    with pytest.raises(ConfigError, match="remove it"):
        load(path)


def test_a_checkpoint_resumes_only_the_same_unchanged_file(tmp_path: Path) -> None:
    file = tmp_path / "ids.ndjson"
    file.write_bytes(b"{}\n")
    cp = Checkpoint(Source.of(file))
    assert cp.resumable_for(Source.of(file)) is None
    other = Source(str(tmp_path / "other.ndjson"), cp.source.size, cp.source.mtime_ns)
    assert "belongs to" in str(cp.resumable_for(other))
    file.write_bytes(b"{}\n{}\n")
    assert "changed" in str(cp.resumable_for(Source.of(file)))
