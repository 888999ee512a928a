"""Handle's HS_ADMIN rights and their twelve-character ``permissions`` string. Pure.

Bit numbers are those of Handle's ``AdminRecord``; bit 0 is the rightmost character of
the string, so ``"011111110011"`` (the default for a handle's own administrator) is every
right but listing and the two derived-prefix rights::

    bit  right                   bit  right
    0    ADD_HANDLE              6    ADD_VALUE
    1    DELETE_HANDLE           7    READ_VALUE      (values not publicly readable)
    2    ADD_DERIVED_PREFIX      8    MODIFY_ADMIN
    3    DELETE_DERIVED_PREFIX   9    REMOVE_ADMIN
    4    MODIFY_VALUE            10   ADD_ADMIN
    5    REMOVE_VALUE            11   LIST_HANDLES
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

BITS = 12


class Right(IntEnum):
    ADD_HANDLE = 0
    DELETE_HANDLE = 1
    ADD_DERIVED_PREFIX = 2
    DELETE_DERIVED_PREFIX = 3
    MODIFY_VALUE = 4
    REMOVE_VALUE = 5
    ADD_VALUE = 6
    READ_VALUE = 7
    MODIFY_ADMIN = 8
    REMOVE_ADMIN = 9
    ADD_ADMIN = 10
    LIST_HANDLES = 11


ALL_RIGHTS = frozenset(Right)

# Named rights for the usual kinds of identity; an HS_ADMIN value's "permissions" may
# give one of these names instead of twelve bits.
PRESETS: dict[str, frozenset[Right]] = {
    "admin": ALL_RIGHTS,
    "registrar": frozenset(
        {
            Right.ADD_HANDLE,
            Right.DELETE_HANDLE,
            Right.ADD_VALUE,
            Right.MODIFY_VALUE,
            Right.REMOVE_VALUE,
            Right.READ_VALUE,
            Right.LIST_HANDLES,
        }
    ),
    "write-values": frozenset(
        {
            Right.ADD_VALUE,
            Right.MODIFY_VALUE,
            Right.REMOVE_VALUE,
            Right.READ_VALUE,
            Right.LIST_HANDLES,
        }
    ),
    "read-only": frozenset({Right.READ_VALUE, Right.LIST_HANDLES}),
}


def parse_permissions(text: str) -> frozenset[Right]:
    """The rights in a twelve-character permissions string (or a preset name)."""
    if text in PRESETS:
        return PRESETS[text]
    if len(text) != BITS or set(text) - {"0", "1"}:
        raise ValueError(f"permissions are {BITS} characters of 0 and 1, or a preset name")
    return frozenset(r for r in Right if text[BITS - 1 - r] == "1")


def format_permissions(rights: Iterable[Right]) -> str:
    """
    >>> format_permissions(PRESETS["read-only"])
    '100010000000'
    """
    held = set(rights)
    return "".join("1" if Right(BITS - 1 - i) in held else "0" for i in range(BITS))
