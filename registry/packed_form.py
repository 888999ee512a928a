"""Stored record bodies compressed with a dictionary (the *packed* form), the
dictionaries themselves, and when to train a new one; free of I/O (:mod:`registry.store`
moves the bytes, and the dictionaries, between Redis and :class:`Dictionaries`).

A record's stored form (:mod:`registry.stored_form`) is ~240 bytes for a demo-shaped
identifier, and most of it is the same text in every record: the types, the JSON
punctuation, ``https://`` and the host, the manufacturer. Deflate with a preset
dictionary of such text writes it as back-references of a few bits each::

    z <dictionary id, LEB128> <raw deflate stream (wbits -12, level 3, memLevel 4)>

The first byte ``z`` cannot start the other forms (``[`` compact, ``{`` Handle JSON of
older nodes), so a store holds any mix and reads each as it is; a record is packed
whenever it is written, never rewritten for the sake of it. The deflate dictionary of a
record is its dictionary's bytes followed by the record's own field name (the handle's
suffix), so the suffix repeated in a URL costs a back-reference too. Unpacking gives
the stored form byte for byte, so answers are those of the unpacked form.

Dictionaries:

* id 0, :data:`BUILTIN`, is part of the code and never changes (a test pins its hash):
  typical stored-form text, so a store compresses from its first record (~72 B for a
  demo-shaped record);
* ids 1, 2, ... are trained from the store's own records (:func:`train`) and kept in
  Redis at ``z:dict:<id>``, written once (SET NX: of two processes training at once,
  one wins the id, the other adopts the winner's) and never changed, so a process
  caches each forever once read. The current dictionary is the highest id there is:
  ids are taken in order, never skipped, so a process finds newer ones by reading
  ``z:dict:<known + 1>`` (:data:`REFRESH_SECONDS` apart); no key is ever overwritten.

When to train (:meth:`Dictionaries.due`): every :data:`TRAIN_EVERY` records a process
packs, it trains a candidate from the last :data:`SAMPLES` stored forms it wrote and
keeps it if it packs the newest of them (held out of the training) to at most
:data:`GAIN` of what the current dictionary makes of them. The first 10,000 records of
a store thus train dictionary 1 (~17 B a demo-shaped record instead of ~74), and a new
dictionary comes only when the records' text has drifted well away from the current
one (another host, manufacturer, types), not for new serial numbers.

Versions (:func:`registry.record_keys.version_of`) are hashes of the bytes as stored,
whatever their form: a commit compares the bytes it loaded with the bytes there, never
a re-packed copy, so a record packed with dictionary 1 and planned by a process now
packing with dictionary 2 commits (or conflicts) as any other.

>>> table = Dictionaries()
>>> body = table.pack(b'[1767571200,[100,"HS_ADMIN",0]]', "a")
>>> body[:2], len(body) < 20, table.unpack(body, "a")
(b'z\\x00', True, b'[1767571200,[100,"HS_ADMIN",0]]')
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence

MARK = ord("z")  # the first byte of a packed body
WBITS = -12  # raw deflate, 4 KiB window: the dictionary's last 4 KiB are all it can use
LEVEL = 3
MEM_LEVEL = 4  # 8 or 9 make compressobj 3-10x slower to create, for nothing here
WINDOW = 1 << -WBITS
# Trained ones. Setting a dictionary hashes every byte of it, for every record packed:
# with 4,000 bytes packing took 6.4 µs a record, with 1,000 3.5 µs, and demo-shaped
# records packed to 14 B either way (the window, 4 KiB, would allow ~4,000).
MAX_DICTIONARY = 1000
SAMPLES = 256  # recent stored forms a process keeps to train from
HELD_OUT = 64  # the newest of them, which judge a candidate instead of training it
TRAIN_EVERY = 10_000  # records packed between two trainings of one process
# A candidate is kept if it packs the held-out records to 60% or less of what the
# current dictionary makes of them. The held-out records are the training samples'
# neighbours, so any fresh candidate wins a little: on demo-shaped records one trained
# just before them packs them to 12 B where a dictionary trained 10,000 or 980,000
# records earlier gives 16-18 B (0.67-0.74), and a store would gain a dictionary per
# 10,000 records a process writes; against dictionary 0 (74 B) a candidate wins at 0.16.
GAIN = 0.6
REFRESH_SECONDS = 10.0  # how often a writer looks for a newer dictionary in Redis

# Dictionary 0: never change these bytes (records packed with them would no longer
# read back; tests/registry/test_packed_form.py pins their hash). Rarer text first,
# the commonest last: deflate codes near distances in fewer bits.
BUILTIN = (
    b'{"f":"base64"}{"f":"hex"}{"f":"site"}{"f":"key"}{"f":"vlist"}{"f":"admin"}{"p":"1100"}'
    b'{"l":3600}{"t":"2025-12-31T00:00:00Z"}{"r":[["0.NA/'
    b',"HS_VLIST",[["],[300,"HS_ADMIN",["0.NA/",300,"011111111111"]],"HS_PUBKEY",{"kty":"RSA","n":"'
    b',"HS_SECKEY","HS_SITE",{"version":1,"servers":[{"address":"'
    b'","EMAIL","mailto:service@example.com"],"DESC","Description",'
    b'"http://www.example.com/index.html",".org/",'
    b'[1767571200,[1,"URL","https://id.example.cn/products/"],[2,"PRODUCT_NAME","'
    b'Machine"],[3,"BATCH","B-000"],[4,"PRODUCTION_DATE","2026-01-01"],'
    b'[5,"MANUFACTURER","Manufacturing Co., Ltd."],[100,"HS_ADMIN",0]]'
)


def dictionary_key(number: int) -> str:
    """The Redis key of dictionary ``number`` (a string, written once)."""
    return f"z:dict:{number}"


def is_packed(body: bytes) -> bool:
    return body[0] == MARK


def dictionary_of(body: bytes) -> tuple[int, int]:
    """(dictionary id, where the deflate stream starts) of a packed body."""
    number, shift, at = 0, 0, 1
    while True:
        byte = body[at]
        number |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return number, at
        shift += 7


def _id_bytes(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def pack(stored: bytes, field: str, number: int, dictionary: bytes) -> bytes:
    """``stored`` packed with dictionary ``number`` (``dictionary`` its bytes) for the
    record at ``field``; deterministic for given bytes (and zlib build)."""
    packer = zlib.compressobj(
        LEVEL, zlib.DEFLATED, WBITS, MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, dictionary + field.encode()
    )
    return b"z" + _id_bytes(number) + packer.compress(stored) + packer.flush()


def unpack(body: bytes, field: str, dictionary: bytes, start: int) -> bytes:
    """The stored form a packed ``body`` holds (its stream from ``start``)."""
    return zlib.decompressobj(WBITS, dictionary + field.encode()).decompress(body[start:])


def train(samples: Sequence[bytes]) -> bytes:
    """A dictionary from sample stored forms (oldest first): the newest whole samples
    that fit in :data:`MAX_DICTIONARY` bytes, duplicates once, in the order written, the
    newest last (nearest: deflate codes near distances in fewer bits). Deterministic:
    the same samples give the same bytes.

    Recent records are what the next records resemble most (the same host and
    manufacturer, neighbouring serials and batches, the product names in turn): on
    demo-shaped records this packs to 17 B a record, where ordering the same samples
    the most typical last (by how many samples share their 8-byte substrings) gave
    18 B, and choosing greedily the samples adding the most unseen text 18 B (in 100 ms).

    >>> train([b"[1,2]", b"[1,3]", b"[1,2]", b"[2,2]"])
    b'[1,3][1,2][2,2]'
    """
    chosen: list[bytes] = []
    seen: set[bytes] = set()
    size = 0
    for sample in reversed(samples):
        if sample in seen:
            continue
        if size + len(sample) > MAX_DICTIONARY:
            break
        seen.add(sample)
        chosen.append(sample)
        size += len(sample)
    return b"".join(reversed(chosen))


def packed_size(samples: Sequence[tuple[bytes, str]], dictionary: bytes) -> int:
    """The bytes ``samples`` (stored form, field) take packed with ``dictionary``."""
    return sum(len(pack(stored, field, 0, dictionary)) for stored, field in samples)


class Dictionaries:
    """The dictionaries a process knows (each immutable once known), the one it packs
    with (the highest id known), and the recent stored forms it trains from.

    >>> table = Dictionaries()
    >>> table.current, table.knows(0), table.knows(1)
    (0, True, False)
    >>> table.learn(1, b'"URL","https://id.example.cn/'); table.current
    1
    """

    def __init__(self) -> None:
        self._known: dict[int, bytes] = {0: BUILTIN}
        self.current = 0
        self._samples: deque[tuple[bytes, str]] = deque(maxlen=SAMPLES)
        self._since = 0  # records packed since the last training

    def knows(self, number: int) -> bool:
        return number in self._known

    def learn(self, number: int, dictionary: bytes) -> None:
        """Dictionary ``number`` as read from the store (or just published)."""
        self._known[number] = dictionary
        self.current = max(self.current, number)

    def pack(self, stored: bytes, field: str) -> bytes:
        """``stored`` packed with the current dictionary (and kept as a sample)."""
        self._samples.append((stored, field))
        self._since += 1
        return pack(stored, field, self.current, self._known[self.current])

    def unpack(self, body: bytes, field: str) -> bytes:
        """The stored form of ``body``, packed or not; a packed body's dictionary must
        be known (:meth:`knows`; else KeyError)."""
        if body[0] != MARK:
            return body
        number, start = dictionary_of(body)
        return unpack(body, field, self._known[number], start)

    def due(self) -> bool:
        """Whether enough records were packed since the last training to train again."""
        return self._since >= TRAIN_EVERY and len(self._samples) >= SAMPLES

    def candidate(self) -> bytes | None:
        """A dictionary trained on the older samples, if it packs the newest ones
        (held out) at most :data:`GAIN` of what the current one makes of them; resets
        :meth:`due` either way."""
        self._since = 0
        samples = list(self._samples)
        trained, judged = samples[:-HELD_OUT], samples[-HELD_OUT:]
        made = train([stored for stored, _ in trained])
        now = packed_size(judged, self._known[self.current])
        return made if packed_size(judged, made) <= GAIN * now else None
