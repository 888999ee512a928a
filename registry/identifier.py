"""Identifier syntax (SPEC §2): prefixes, handles and identities.

A handle is ``prefix/suffix`` split at the first ``/``. Two notions of a prefix:

* **Handle syntax** (:func:`prefix_problem`, :meth:`Prefix.parse`, :meth:`Handle.parse`),
  what the Handle System accepts, so every Handle client's identifiers parse here:
  RFC 3651 §2.1 "Handle Syntax" makes a prefix (naming authority) dot-separated
  non-empty segments of any characters but ``.`` and ``/``: ``10.1000``,
  ``20.500.12345``, ``21.T14999`` (a prefix with letters: the ePIC/GWDG ``T``
  prefixes). We also refuse non-printable characters (as in suffixes) and bound a
  prefix to :data:`MAX_PREFIX_CHARS` and a handle to :data:`MAX_HANDLE_BYTES` (SPEC §2).
* **The national policy** (:func:`national_prefix_problem`, :meth:`Prefix.national`):
  the prefixes *we* allocate and hold are runs of ASCII digits (``88``, ``88.100``,
  ``88.100.1``). It is checked where a prefix of ours is configured, registered, filed
  or allocated; a syntactically valid prefix outside it is simply held by no node of
  this hierarchy (400, responseCode 301, "not responsible"), never a syntax error.

``0.NA`` is the prefix of prefix records: ``0.NA/88.100`` describes prefix ``88.100``,
so its suffix must itself be a (Handle-syntax) prefix; ``0.NA/21.T14999`` is valid and
homed where ``21.T14999`` is. Matching is ASCII case-insensitive (``key``) while
``text`` keeps the case the caller used (RFC 3652 §2.1.3 "Character Case").

Registration policy (:func:`registration_problem`). :meth:`Handle.parse` accepts any
printable suffix, as the Handle System does, so every stored record keeps resolving and
can still be changed or deleted. A *new* identifier must also have a suffix that cannot
pass for another one; the registrar refuses it (400, responseCode 102) otherwise:

=====================================  ==================================================
rule                                   refuses, for example
=====================================  ==================================================
Unicode NFC                            ``e`` + U+0301 COMBINING ACUTE (write ``é``)
unchanged by NFKC (no compatibility    U+212A KELVIN SIGN for ``K``, fullwidth ``Ａ１``,
characters)                            ligatures ``ﬁ``, superscripts ``²``, NBSP
no letters of two of Latin, Greek,     ``pаypal`` with a Cyrillic ``а``; ``Ωmega``
Cyrillic (confusable scripts)          (other scripts, e.g. CJK, mix with Latin freely)
``/``-separated segments non-empty     ``a//b``, ``/a``, ``a/``
no ``.`` or ``..`` segment             ``./a``, ``a/../b``, ``..``
no whitespace at either end of a       ``ABC `` (trailing space), `` ABC``, ``a /b``
segment                                (a space inside a segment is allowed)
=====================================  ==================================================

The rules are about the suffix: a prefix we allocate is ASCII digits already (the
national policy), and the suffix of a ``0.NA`` handle is a prefix. Python's
``unicodedata`` fixes the Unicode version.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from registry.errors import InvalidHandle

MAX_PREFIX_CHARS = 64
MAX_HANDLE_BYTES = 255
PREFIX_HANDLE_PREFIX = "0.NA"
MAX_IDENTITY_INDEX = 2**31 - 1
# The index of a prefix's bootstrap administrator: ``300:0.NA/<P>`` administers ``P``.
ADMIN_SECRET_INDEX = 300

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only; other characters keep their case (Handle rules)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class Prefix:
    """A naming authority such as ``88.100.1`` (or, in Handle syntax, ``21.T14999``).

    >>> Prefix.parse("88.100.1").parent
    Prefix(text='88.100')
    >>> Prefix.parse("88.100").contains(Prefix.parse("88.100.7"))
    True
    >>> Prefix.parse("21.T14999").parent, Prefix.parse("21.T14999").national
    (Prefix(text='21'), False)
    """

    text: str

    @property
    def national(self) -> bool:
        """Whether the prefix follows the national policy (ASCII digit segments): only
        such a prefix can be held by a node of this hierarchy."""
        return _national(self.text)

    @classmethod
    def parse(cls, text: str) -> Prefix:
        """Any prefix Handle's syntax allows (``21.T14999`` too); raises InvalidHandle."""
        problem = prefix_problem(text)
        if problem is not None:
            raise InvalidHandle(f"Invalid prefix {text!r}: {problem}")
        return cls(text)

    @classmethod
    def parse_national(cls, text: str) -> Prefix:
        """A prefix this hierarchy may allocate or hold (digit segments); raises
        InvalidHandle (102) naming the rule otherwise.

        >>> Prefix.parse_national("88.100.1").national
        True
        """
        problem = national_prefix_problem(text)
        if problem is not None:
            raise InvalidHandle(f"Invalid prefix {text!r}: {problem}")
        return cls(text)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.text.split("."))

    @property
    def parent(self) -> Prefix | None:
        head, dot, _ = self.text.rpartition(".")
        return Prefix(head) if dot else None

    @property
    def record_handle(self) -> Handle:
        """The ``0.NA/<prefix>`` handle that describes this prefix."""
        return Handle(PREFIX_HANDLE_PREFIX, self.text)

    def contains(self, other: Prefix) -> bool:
        """True when ``other`` is this prefix or lies below it (``88.100`` ⊇ ``88.100.3``),
        ASCII letters compared case-insensitively (``21.t1`` ⊇ ``21.T1.X``)."""
        mine, theirs = self.text, other.text
        if theirs == mine or theirs.startswith(mine + "."):
            return True  # the common case (digits have no case): no folding needed
        if _national(mine) and _national(theirs):
            return False  # digits only: nothing to fold
        folded_mine, folded_theirs = ascii_lower(mine), ascii_lower(theirs)
        return folded_theirs == folded_mine or folded_theirs.startswith(folded_mine + ".")

    def __str__(self) -> str:
        return self.text


def prefix_problem(text: str) -> str | None:
    """Why ``text`` is not a prefix in Handle's syntax, or None when it is one.

    RFC 3651 §2.1: dot-separated segments, each at least one character, none of them
    ``.`` or ``/``. Our own bounds: printable characters, at most MAX_PREFIX_CHARS.

    >>> prefix_problem("21.T14999") is None, prefix_problem("88..1")
    (True, 'empty segment (two dots, or a leading or trailing dot)')
    """
    if not text:
        return "the prefix is empty"
    if len(text) > MAX_PREFIX_CHARS:
        return f"a prefix has at most {MAX_PREFIX_CHARS} characters"
    if "/" in text:
        return "a prefix cannot contain '/'"
    if not text.isprintable():
        bad = next(ch for ch in text if not ch.isprintable())
        return f"the prefix contains a non-printable character (U+{ord(bad):04X})"
    if text[0] == "." or text[-1] == "." or ".." in text:
        return "empty segment (two dots, or a leading or trailing dot)"
    return None


def national_prefix_problem(text: str) -> str | None:
    """Why ``text`` may not be a prefix this hierarchy allocates or holds, or None.

    The national policy: Handle syntax, and every segment ASCII digits.

    >>> national_prefix_problem("88.100.1") is None
    True
    >>> national_prefix_problem("21.T14999")
    "segment 'T14999' is not ASCII digits; this hierarchy's prefixes are, e.g. 88.100.1"
    """
    problem = prefix_problem(text)
    if problem is not None:
        return problem
    for segment in text.split("."):
        if not (segment.isascii() and segment.isdigit()):
            return (
                f"segment {segment!r} is not ASCII digits; "
                "this hierarchy's prefixes are, e.g. 88.100.1"
            )
    return None


@dataclass(frozen=True, slots=True)
class Handle:
    """A parsed, valid handle.

    >>> h = Handle.parse("88.100.1/ABC-123")
    >>> h.prefix, h.suffix, h.key
    ('88.100.1', 'ABC-123', '88.100.1/abc-123')
    >>> Handle.parse("0.na/88.100").described_prefix
    Prefix(text='88.100')
    """

    prefix: str
    suffix: str
    # Derived once: the hot path and batches ask for them many times per handle.
    text: str = field(init=False, repr=False, compare=False)
    key: str = field(init=False, repr=False, compare=False)  # the case-folded form
    # The prefix whose node is responsible for this handle. A prefix record
    # ``0.NA/88.100.1`` is homed where ``88.100.1`` is: the node that holds a prefix
    # also answers for its record (Handle's HS_SITE behaviour).
    home_prefix: Prefix = field(init=False, repr=False, compare=False)
    # For ``0.NA/P``: prefix ``P``; for any other handle: None.
    described_prefix: Prefix | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = f"{self.prefix}/{self.suffix}"
        described = _prefix(self.suffix) if self.prefix == PREFIX_HANDLE_PREFIX else None
        _set(self, "text", text)
        _set(self, "key", ascii_lower(text))
        _set(self, "described_prefix", described)
        _set(self, "home_prefix", described or _prefix(self.prefix))

    @classmethod
    def parse(cls, text: str) -> Handle:
        prefix, slash, suffix = text.partition("/")
        if not slash:
            raise InvalidHandle(f"Invalid handle {text!r}: expected prefix/suffix", handle=text)
        if len(prefix) == 4 and ascii_lower(prefix) == "0.na":
            problem = prefix_problem(suffix)
            if problem is not None:
                raise InvalidHandle(
                    f"Invalid prefix handle {text!r}: the suffix of a 0.NA handle must be a "
                    f"prefix, and {problem}",
                    handle=text,
                )
            return cls(PREFIX_HANDLE_PREFIX, suffix)
        if len(prefix) <= MAX_PREFIX_CHARS:  # what the cache keeps stays small
            problem = _known_prefix_problem(prefix)
        else:
            problem = prefix_problem(prefix)
        if problem is None:
            problem = suffix_problem(suffix)
        # UTF-8 takes at most 4 bytes a character: most handles need no encoding to check.
        if (
            problem is None
            and len(text) * 4 > MAX_HANDLE_BYTES
            and len(text.encode()) > MAX_HANDLE_BYTES
        ):
            problem = f"a handle has at most {MAX_HANDLE_BYTES} UTF-8 bytes"
        if problem is not None:
            raise InvalidHandle(f"Invalid handle {text!r}: {problem}", handle=text)
        return cls(prefix, suffix)

    @property
    def is_prefix_record(self) -> bool:
        return self.prefix == PREFIX_HANDLE_PREFIX

    def __str__(self) -> str:
        return self.text


# Handles are made by the thousand (a batch, a search page) under a few prefixes: their
# Prefix objects (immutable) are shared and each prefix is checked once. Prefixes are
# client text, so the caches are bounded.
_prefix = lru_cache(maxsize=4096)(Prefix)
_known_prefix_problem = lru_cache(maxsize=4096)(prefix_problem)


@lru_cache(maxsize=4096)
def _national(text: str) -> bool:
    # Segments are known non-empty (a parsed prefix, or text built from parsed ones):
    # digits and dots alone make a national prefix.
    return text.isascii() and text.replace(".", "").isdigit()


_set = object.__setattr__  # a frozen dataclass sets its derived fields through object


def suffix_problem(suffix: str) -> str | None:
    if not suffix:
        return "the suffix is empty"
    if not suffix.isprintable():
        bad = next(ch for ch in suffix if not ch.isprintable())
        return f"the suffix contains a non-printable character (U+{ord(bad):04X})"
    return None


# Scripts whose letters look alike (a Cyrillic "а" is a Latin "a" to the eye): a suffix
# may use letters of at most one of them. Read from the characters' Unicode names.
CONFUSABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def registration_problem(handle: Handle) -> str | None:
    """Why ``handle`` may not be *created* (the registration policy in the module
    docstring), or None. Existing records are never checked against it.

    >>> registration_problem(Handle.parse("88.100.1/ABC-123")) is None
    True
    >>> registration_problem(Handle.parse("88.100.1/ABC "))
    "'88.100.1/ABC ': a new identifier may not end with whitespace"
    """
    suffix = handle.suffix
    if handle.is_prefix_record or (suffix.isascii() and _PLAIN.issuperset(suffix)):
        return None  # the common case: nothing below can refuse it
    problem = _suffix_registration_problem(suffix)
    return None if problem is None else f"{handle.text!r}: a new identifier {problem}"


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:;,+=#@")


def _suffix_registration_problem(suffix: str) -> str | None:
    if not unicodedata.is_normalized("NFC", suffix):
        # A singleton such as the Kelvin sign is named; a decomposed sequence (a letter
        # and a combining mark) is shown composed.
        for ch in suffix:
            if (composed := unicodedata.normalize("NFC", ch)) != ch:
                return f"may not contain {_named(ch)}; write {composed!r}"
        return f"must be in Unicode NFC form; write {unicodedata.normalize('NFC', suffix)!r}"
    for ch in suffix:
        if (folded := unicodedata.normalize("NFKC", ch)) != ch:
            return f"may not contain {_named(ch)}; write {folded!r}"
    scripts = sorted({_script(ch) for ch in suffix if ch.isalpha()} & set(CONFUSABLE_SCRIPTS))
    if len(scripts) > 1:
        return f"may not mix {' and '.join(s.title() for s in scripts)} letters"
    if suffix[0].isspace():
        return "may not start with whitespace"
    if suffix[-1].isspace():
        return "may not end with whitespace"
    for segment in suffix.split("/"):
        if not segment:
            return "may not have an empty segment (a leading, trailing or double '/')"
        if segment in (".", ".."):
            return f"may not have a {segment!r} segment"
        if segment[0].isspace() or segment[-1].isspace():
            return "may not have whitespace next to a '/'"
    return None


def _named(ch: str) -> str:
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')})"


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").partition(" ")[0]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is acting: ``<index>:<handle>``, the value holding the credential.

    >>> Identity.parse("300:0.NA/88.100").text
    '300:0.NA/88.100'
    """

    index: int
    handle: Handle

    @classmethod
    def parse(cls, text: str) -> Identity:
        index_text, colon, handle_text = text.partition(":")
        # At most ten digits: bounds the int() below and every real index (<= 2**31 - 1).
        if not (colon and index_text.isascii() and index_text.isdigit() and len(index_text) <= 10):
            raise InvalidHandle(
                f"Invalid identity {text[:80]!r}: expected <index>:<handle>, e.g. 300:0.NA/88.100"
            )
        index = int(index_text)
        if not 1 <= index <= MAX_IDENTITY_INDEX:
            raise InvalidHandle(f"Invalid identity {text!r}: index must be 1..{MAX_IDENTITY_INDEX}")
        return cls(index, Handle.parse(handle_text))

    @property
    def administered_prefix(self) -> Prefix | None:
        """The prefix this identity administers: ``P`` for ``300:0.NA/P``, else None.

        Only the bootstrap index counts. A key at another index of ``0.NA/P`` is an
        identity like any other, with the rights HS_ADMIN values grant it and no more.

        >>> Identity.parse("300:0.NA/88.100").administered_prefix
        Prefix(text='88.100')
        >>> Identity.parse("301:0.NA/88.100").administered_prefix is None
        True
        """
        return self.handle.described_prefix if self.index == ADMIN_SECRET_INDEX else None

    @property
    def text(self) -> str:
        return f"{self.index}:{self.handle.text}"

    @property
    def key(self) -> str:
        return f"{self.index}:{self.handle.key}"

    def __str__(self) -> str:
        return self.text
