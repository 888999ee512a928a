"""China's unified social credit code (统一社会信用代码), GB 32100-2015.

Every legal person and other organisation registered in China carries one 18-character
code drawn from the 31 characters ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (digits and the
capital letters A-Y without I, O, S, V and Z)::

    9 1 350100 M000100Y4 3
    │ │ │      │         └─ 18      check character
    │ │ │      └─────────── 9-17    organisation code (GB 11714)
    │ │ └────────────────── 3-8     administrative division code (GB/T 2260, digits)
    │ └──────────────────── 2       organisation type code
    └────────────────────── 1       registration authority code

The check character is a weighted sum modulo 31: each of the first 17 characters counts
as its index in the alphabet, position ``i`` (from 0) is weighted ``3**i mod 31``, and the
check is ``31 - sum mod 31``, with 31 written as ``0``. Because 31 is prime and no weight
is 0, changing any single one of the first 17 characters always changes the check.

Only the syntax and the check are verified here: whether the registration authority,
organisation type and division codes are actually assigned is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.errors import InvalidValue

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LENGTH = 18
WEIGHTS = tuple(pow(3, i, 31) for i in range(LENGTH - 1))

_VALUES = {ch: i for i, ch in enumerate(ALPHABET)}
_DIVISION = slice(2, 8)
# Upper-case ASCII letters only: str.upper() would also turn e.g. "ß" into "SS".
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_character(first17: str) -> str:
    """The check character (position 18) for the first 17 characters of a code.

    ``first17`` must be 17 characters of :data:`ALPHABET` (upper case); anything else
    raises :class:`ValueError`.

    >>> check_character("91350100M000100Y4")
    '3'
    """
    if len(first17) != LENGTH - 1:
        raise ValueError(f"expected {LENGTH - 1} characters, got {len(first17)}")
    total = 0
    for position, (ch, weight) in enumerate(zip(first17, WEIGHTS, strict=True), start=1):
        value = _VALUES.get(ch)
        if value is None:
            raise ValueError(f"character {ch!r} at position {position} is not in the alphabet")
        total += value * weight
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(text: str) -> str | None:
    """Why ``text`` is not a valid unified social credit code, or ``None`` if it is.

    ASCII lower-case letters are accepted (the code is upper-cased first); nothing else is
    normalised, so surrounding spaces or inner separators are reported as problems.

    >>> credit_code_problem("91350100m000100y43") is None
    True
    >>> credit_code_problem("91350100M000100Y44")
    "the check character should be '3', got '4'"
    """
    code = text.translate(_ASCII_UPPER)
    if len(code) != LENGTH:
        return f"a unified social credit code has {LENGTH} characters, got {len(code)}"
    for position, ch in enumerate(code, start=1):
        if ch not in _VALUES:
            return (
                f"character {ch!r} at position {position} is not allowed "
                "(GB 32100-2015 uses 0-9 and A-Y without I, O, S, V, Z)"
            )
    division = code[_DIVISION]
    if not (division.isascii() and division.isdigit()):
        return f"positions 3-8 (administrative division code) must be digits, got {division!r}"
    expected = check_character(code[:-1])
    if code[-1] != expected:
        return f"the check character should be {expected!r}, got {code[-1]!r}"
    return None


@dataclass(frozen=True, slots=True)
class CreditCode:
    """A valid unified social credit code, stored upper-case.

    >>> code = CreditCode.parse("91110000600037341l")
    >>> code.text
    '91110000600037341L'
    >>> CreditCode.parse("91110000600037341X")
    Traceback (most recent call last):
        ...
    registry.errors.InvalidValue: creditCode: the check character should be 'L', got 'X'
    """

    text: str

    @classmethod
    def parse(cls, text: str) -> CreditCode:
        """Validate ``text`` (see :func:`credit_code_problem`); raise InvalidValue if bad."""
        problem = credit_code_problem(text)
        if problem is not None:
            raise InvalidValue(f"creditCode: {problem}")
        return cls(text.translate(_ASCII_UPPER))


def make_credit_code(body17: str) -> str:
    """``body17`` (upper-cased) followed by its check character, e.g. for demo data.

    Raises :class:`ValueError` if the result would not be a valid code.

    >>> make_credit_code("91420100" + "MA4K0A1B2")
    '91420100MA4K0A1B28'
    """
    body = body17.translate(_ASCII_UPPER)
    code = body + check_character(body)
    problem = credit_code_problem(code)
    if problem is not None:
        raise ValueError(problem)
    return code
