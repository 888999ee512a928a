"""In-process copies of public bodies (pure): validity, forgetting, in-flight reads."""

from __future__ import annotations

from registry.local_copy import LocalCopies


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_copy_lives_for_its_ttl() -> None:
    clock = Clock()
    copies = LocalCopies(1.0, clock=clock)
    copies.put("88.100/a", b"body", copies.generation)
    assert copies.get("88.100/a") == (True, b"body")
    clock.now += 0.999
    assert copies.get("88.100/a") == (True, b"body")
    clock.now += 0.001
    assert copies.get("88.100/a") == (False, None)


def test_not_found_is_kept_too_and_differs_from_no_copy() -> None:
    copies = LocalCopies(1.0, clock=Clock())
    assert copies.get("88.100/gone") == (False, None)
    copies.put("88.100/gone", None, copies.generation)
    assert copies.get("88.100/gone") == (True, None)


def test_forgetting_drops_only_those_keys() -> None:
    copies = LocalCopies(1.0, clock=Clock())
    for key in ("a", "b", "c"):
        copies.put(key, key.encode(), copies.generation)
    copies.forget(["a", "c", "never-kept"])
    assert [copies.get(k)[0] for k in ("a", "b", "c")] == [False, True, False]


def test_a_read_in_flight_while_something_was_forgotten_is_not_kept() -> None:
    copies = LocalCopies(1.0, clock=Clock())
    started = copies.generation  # a read begins...
    copies.forget(["88.100/a"])  # ...a write commits meanwhile...
    copies.put("88.100/a", b"old", started)  # ...the read's answer may predate it
    assert copies.get("88.100/a") == (False, None)
    copies.put("88.100/a", b"new", copies.generation)
    assert copies.get("88.100/a") == (True, b"new")


def test_a_zero_ttl_keeps_nothing_and_the_size_is_bounded() -> None:
    off = LocalCopies(0.0, clock=Clock())
    off.put("a", b"x", off.generation)
    assert off.get("a") == (False, None)
    small = LocalCopies(1.0, max_entries=3, clock=Clock())
    for n in range(5):
        small.put(str(n), b"x", small.generation)
    assert sum(small.get(str(n))[0] for n in range(5)) <= 3
    assert small.get("4") == (True, b"x")


def test_clear_forgets_everything() -> None:
    copies = LocalCopies(1.0, clock=Clock())
    copies.put("a", b"x", copies.generation)
    before = copies.generation
    copies.clear()
    assert copies.get("a") == (False, None) and copies.generation > before
