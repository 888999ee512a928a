"""``loadtest.capacity_profile``: py-spy's folded stacks summarised (pure)."""

from __future__ import annotations

import pytest

from loadtest.capacity_profile import hot_functions, render_profile

# py-spy record --format raw, shortened
FOLDED = """\
<module> (uvicorn/main.py:10);run (asyncio/runners.py:118);handle (node/handles.py:95);\
answer (node/answerer.py:101);local (resolver/answer_cache.py:55) 30
<module> (uvicorn/main.py:10);run (asyncio/runners.py:118);handle (node/handles.py:97);\
dumps (orjson:0) 10
<module> (uvicorn/main.py:10);run (asyncio/runners.py:118);handle (node/handles.py:95) 20
<module> (uvicorn/main.py:10);run (asyncio/runners.py:118);recurse (a.py:1);recurse (a.py:1) 40
this line is not a stack
"""


def test_hot_functions_rank_by_own_time_and_merge_lines() -> None:
    hot = hot_functions(FOLDED, 3)
    assert [f.name for f in hot] == [
        "recurse (a.py)",
        "local (resolver/answer_cache.py)",
        "handle (node/handles.py)",  # lines 95 and 97 together
    ]
    assert [f.own for f in hot] == pytest.approx([0.4, 0.3, 0.2])
    assert hot[0].total == pytest.approx(0.4)  # recursion counted once per sample
    assert hot[2].total == pytest.approx(0.6)


def test_hot_functions_of_nothing() -> None:
    assert hot_functions("") == []


def test_render_profile_is_a_markdown_table() -> None:
    text = render_profile(hot_functions(FOLDED), "top node, cached")
    assert text.startswith("# Profile: top node, cached")
    assert "| 1 | `recurse (a.py)` | 40.0% | 40.0% |" in text
    assert text.count("\n| ") == 2 + 4  # header, rule, the four with own time
