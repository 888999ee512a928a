"""registry.credit_code: unified social credit codes (GB 32100-2015)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import registry.credit_code
from registry.credit_code import (
    ALPHABET,
    WEIGHTS,
    CreditCode,
    check_character,
    credit_code_problem,
    make_credit_code,
)
from registry.errors import InvalidValue
from tests.registry.strategies import fast

KNOWN_VALID = ["91350100M000100Y43", "91110000600037341L"]

bodies = st.builds(
    lambda head, division, org: head + division + org,
    st.text(ALPHABET, min_size=2, max_size=2),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(ALPHABET, min_size=9, max_size=9),
)
valid_codes = bodies.map(make_credit_code)


def test_alphabet_and_weights() -> None:
    assert len(ALPHABET) == 31
    assert len(set(ALPHABET)) == 31
    assert not set("IOSVZ") & set(ALPHABET)
    assert list(WEIGHTS) == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_known_examples_are_valid(code: str) -> None:
    assert credit_code_problem(code) is None
    assert check_character(code[:17]) == code[17]
    assert make_credit_code(code[:17]) == code
    assert CreditCode.parse(code).text == code


def test_check_31_is_written_as_zero() -> None:
    # All zeros sums to 0, so 31 - 0 = 31, which is written as "0".
    assert check_character("0" * 17) == "0"
    assert credit_code_problem("0" * 18) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a unified social credit code has 18 characters, got 0"),
        ("91350100M000100Y4", "a unified social credit code has 18 characters, got 17"),
        ("91350100M000100Y433", "a unified social credit code has 18 characters, got 19"),
        (" 91350100M000100Y43", "a unified social credit code has 18 characters, got 19"),
        (
            "9135I100M000100Y43",
            "character 'I' at position 5 is not allowed "
            "(GB 32100-2015 uses 0-9 and A-Y without I, O, S, V, Z)",
        ),
        (
            "91350100M000100Y4-",
            "character '-' at position 18 is not allowed "
            "(GB 32100-2015 uses 0-9 and A-Y without I, O, S, V, Z)",
        ),
        (
            "91350100M0001 0Y43",
            "character ' ' at position 14 is not allowed "
            "(GB 32100-2015 uses 0-9 and A-Y without I, O, S, V, Z)",
        ),
        (
            "91350100M000100Z43",
            "character 'Z' at position 16 is not allowed "
            "(GB 32100-2015 uses 0-9 and A-Y without I, O, S, V, Z)",
        ),
        (
            "9135A100M000100Y43",
            "positions 3-8 (administrative division code) must be digits, got '35A100'",
        ),
        ("91350100M000100Y44", "the check character should be '3', got '4'"),
        ("91110000600037341X", "the check character should be 'L', got 'X'"),
    ],
)
def test_problem_messages(text: str, message: str) -> None:
    assert credit_code_problem(text) == message


@pytest.mark.parametrize("letter", "IOSVZ")
def test_excluded_letters_rejected(letter: str) -> None:
    code = KNOWN_VALID[0][:10] + letter + KNOWN_VALID[0][11:]
    assert credit_code_problem(code) == (
        f"character '{letter}' at position 11 is not allowed "
        "(GB 32100-2015 uses 0-9 and A-Y without I, O, S, V, Z)"
    )


def test_non_ascii_digits_in_division_rejected() -> None:
    # Fullwidth digits are not in the alphabet at all.
    problem = credit_code_problem("91３50100M000100Y43")
    assert problem is not None and "position 3" in problem


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_lower_case_accepted(code: str) -> None:
    assert credit_code_problem(code.lower()) is None
    assert CreditCode.parse(code.lower()).text == code
    assert make_credit_code(code[:17].lower()) == code


def test_parse_raises_invalid_value() -> None:
    with pytest.raises(InvalidValue) as info:
        CreditCode.parse("91350100M000100Y44")
    err = info.value
    assert err.response_code == 202
    assert err.http_status == 400
    assert err.message.startswith("creditCode:")
    assert err.message == "creditCode: the check character should be '3', got '4'"


@pytest.mark.parametrize("text", ["", "91350100M000100Y4", "9135A100M000100Y43"])
def test_parse_rejects_every_kind_of_problem(text: str) -> None:
    with pytest.raises(InvalidValue, match="^creditCode: "):
        CreditCode.parse(text)


@pytest.mark.parametrize("bad", ["", "9135010", "91350100M000100Y4I", "91350100m000100Y4"])
def test_check_character_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError):
        check_character(bad)


def test_make_credit_code_rejects_bad_body() -> None:
    with pytest.raises(ValueError, match="administrative division code"):
        make_credit_code("9135A100M000100Y4")
    with pytest.raises(ValueError):
        make_credit_code("91350100M000100Y")


def _substitutions(code: str) -> list[str]:
    return [code[:i] + ch + code[i + 1 :] for i in range(17) for ch in ALPHABET if ch != code[i]]


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_every_single_substitution_of_known_examples_detected(code: str) -> None:
    for changed in _substitutions(code):
        assert credit_code_problem(changed) is not None, changed


@fast
@given(valid_codes)
def test_generated_codes_are_valid(code: str) -> None:
    assert credit_code_problem(code) is None
    assert CreditCode.parse(code).text == code


@fast
@given(valid_codes)
def test_every_single_substitution_detected(code: str) -> None:
    for changed in _substitutions(code):
        problem = credit_code_problem(changed)
        assert problem is not None, changed
        if changed[2:8].isdigit():
            # Still well-formed, so only the check can catch it.
            assert problem.startswith("the check character should be "), changed


@fast
@given(valid_codes, st.data())
def test_wrong_check_character_names_expected(code: str, data: st.DataObject) -> None:
    wrong = data.draw(st.sampled_from(ALPHABET).filter(lambda ch: ch != code[17]))
    assert credit_code_problem(code[:17] + wrong) == (
        f"the check character should be '{code[17]}', got '{wrong}'"
    )


def test_docstring_examples() -> None:
    result = doctest.testmod(registry.credit_code)
    assert result.attempted > 0
    assert result.failed == 0
