"""Stored record bodies compressed with a dictionary (the *packed* form), the
dictionaries themselves, and when to train a new one; free of I/O (:mod:`registry.store`
moves the bytes, and the dictionaries, between Redis and :class:`Dictionaries`).

A record's stored form (:mod:`registry.stored_form`) is ~240 bytes for a demo-shaped
identifier, and most of it is the same text in every record: the types, the JSON
punctuation, ``https://`` and the host, the manufacturer. Zstandard with a dictionary
of such text writes it as matches of a few bits each::

    z <dictionary id, LEB128> <zstd frame: magicless, no content size, checksum or dict id>

The first byte ``z`` cannot start the other forms (``[`` compact, ``{`` Handle JSON of
older nodes), so a store holds any mix and reads each as it is; a record is packed
whenever it is written, never rewritten for the sake of it. Before compressing, the
record's own field name (the handle's suffix, lower-cased) is replaced by the byte
``\\x01`` wherever it occurs and its ASCII upper-case form by ``\\x02``, and they are
put back after decompressing: the suffix repeated in a URL or a serial number then
costs what a byte of common text costs, whatever the suffix. The markers are
unambiguous because a stored form is JSON written by orjson, which escapes every
control character, and a suffix is printable. Unpacking gives the stored form byte for
byte, so answers are those of the unpacked form.

Dictionaries:

* id 0, :data:`BUILTIN`, is part of the code and never changes (a test pins its hash):
  typical stored-form text used as a raw-content dictionary, so a store compresses
  from its first record;
* ids 1, 2, ... are trained from the store's own records (:func:`train`, zstd's
  dictionary builder, :data:`DICTIONARY_SIZE` bytes at most) and kept in Redis at
  ``z:dict:<id>``, written once (SET NX: of two processes training at once, one wins
  the id, the other adopts the winner's) and never changed, so a process caches each
  forever once read. The current dictionary is the highest id there is: ids are taken
  in order, never skipped, so a process finds newer ones by reading
  ``z:dict:<known + 1>`` (:data:`REFRESH_SECONDS` apart); no key is ever overwritten.

When to train (:meth:`Dictionaries.due`, :meth:`Dictionaries.candidate`): every
:data:`TRAIN_EVERY` records a process packs, it looks at the :data:`HELD_OUT` newest
stored forms it wrote: with dictionary 0, or when the current dictionary packs them to
more than 1/:data:`GAIN` of what it made of its own held-out records when it was
adopted, it trains a candidate from a uniform sample of all the records it packed
before them (a reservoir of :data:`SAMPLES` - :data:`HELD_OUT`; ~40-400 ms: the store
runs it in a worker thread) and keeps it
if it packs the held-out ones to at most :data:`GAIN` of what the current dictionary
makes of them. The first 10,000 records of a store thus train dictionary 1, and a new
dictionary comes only when the records' text has drifted well away from the current
one (another host, manufacturer, types), not for new serial numbers.

Compressor and decompressor objects are kept per dictionary by each
:class:`Dictionaries` (a store's, used from its event loop only); they are not
thread-safe, so the training thread builds its own (:class:`Codec`).

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

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

MARK = ord("z")  # the first byte of a packed body
LEVEL = 3  # 1.4 µs a record to pack; higher levels gain a byte or less on these records
# Where the field name stands in the text compressed: control bytes, which orjson always
# escapes in JSON text (\u0001) and a suffix (printable) never holds.
LOWER_MARK, UPPER_MARK = b"\x01", b"\x02"
# Trained ones: zstd's builder makes at most this many bytes (demo-shaped records,
# alike apart from serials, make ~1 KB; the scale catalog's products and Chinese
# manufacturer names use it all). A dictionary costs no time a record to use, unlike
# a deflate preset dictionary, which is hashed for every record it packs.
DICTIONARY_SIZE = 16_384
# The stored forms a process keeps to train from (~1 MB): a uniform sample of every
# record it has packed (a reservoir), so that a dictionary trained late knows the
# products and manufacturers of the whole history, not of the last lots alone; and the
# newest HELD_OUT apart, which judge a candidate instead of training it.
SAMPLES = 4_500
HELD_OUT = 500
TRAIN_EVERY = 10_000  # records packed between two looks at the current dictionary
# A candidate is kept if it packs the held-out records to GAIN or less of what the
# current dictionary makes of them; and one is trained at all (from dictionary 0 on)
# only when the current dictionary packs the held-out records to more than 1/GAIN of
# what it made of its own held-out records when adopted: any fresh candidate wins a
# little on its neighbours, and training costs 40-400 ms of a core. (0.6 let records
# of the scale catalog drift from ~40 to ~62 B without a new dictionary.)
GAIN = 0.8
REFRESH_SECONDS = 10.0  # how often a writer looks for a newer dictionary in Redis
# A frame carries no content size (a byte or two a record): unpacking decompresses into
# a buffer this large, and a bigger record (up to 16 MB: 500 values of 32 KiB) is
# decompressed by the streaming decoder instead. A 16 MiB buffer every time would cost
# 16 µs a record instead of 0.6 (allocating it).
OUTPUT_GUESS = 1 << 20

# Dictionary 0: never change these bytes (records packed with them would no longer
# read back; tests/registry/test_packed_form.py pins their hash). A raw-content
# dictionary: zstd matches against it as against text already written, the commonest
# text last (nearest: cheapest offsets). \x01 is where a record's own suffix stands.
BUILTIN = (
    b'{"f":"base64"}{"f":"hex"}{"f":"site"}{"f":"key"}{"f":"vlist"}{"f":"admin"}{"p":"1100"}'
    b'{"l":3600}{"t":"2025-12-31T00:00:00Z"}{"r":[["0.NA/'
    b',"HS_VLIST",[["],[300,"HS_ADMIN",["0.NA/",300,"011111111111"]],"HS_PUBKEY",{"kty":"RSA","n":"'
    b',"HS_SECKEY","HS_SITE",{"version":1,"servers":[{"address":"'
    b'","EMAIL","mailto:service@example.com"],"DESC","Description",'
    b'"http://www.example.com/index.html",".org/",'
    b'[1767571200,[1,"URL","https://id.example.cn/products/\x01"],[2,"PRODUCT_NAME","'
    b'Machine"],[3,"BATCH","B-000"],[4,"PRODUCTION_DATE","2026-01-01"],'
    b'[5,"MANUFACTURER","Manufacturing Co., Ltd."],[100,"HS_ADMIN",0]]'
)


def dictionary_key(number: int) -> str:
    """The Redis key of dictionary ``number`` (a string, written once)."""
    return f"z:dict:{number}"


def is_packed(body: bytes) -> bool:
    return body[0] == MARK


def dictionary_of(body: bytes) -> tuple[int, int]:
    """(dictionary id, where the zstd frame starts) of a packed body."""
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


def marked(stored: bytes, field: str) -> bytes:
    """``stored`` with ``field`` replaced by ``\\x01`` and its ASCII upper case by
    ``\\x02`` (what is compressed, and what dictionaries are trained on).

    >>> marked(b'["https://x/ab1","AB1-aB1"]', "ab1")
    b'["https://x/\\x01","\\x02-aB1"]'
    """
    lower = field.encode()
    upper = lower.upper()
    text = stored.replace(lower, LOWER_MARK)
    return text.replace(upper, UPPER_MARK) if upper != lower else text


def unmarked(text: bytes, field: str) -> bytes:
    """The stored form ``text`` (:func:`marked`) stands for."""
    lower = field.encode()
    return text.replace(UPPER_MARK, lower.upper()).replace(LOWER_MARK, lower)


_PARAMETERS = zstandard.ZstdCompressionParameters.from_level(
    LEVEL,
    format=zstandard.FORMAT_ZSTD1_MAGICLESS,
    write_content_size=0,
    write_checksum=0,
    write_dict_id=0,
)


class Codec:
    """A compressor and a decompressor for one dictionary, reusable record after record
    (each is ~10x the cost of a record to set up); not thread-safe: one per thread.

    The dictionary's bytes are a zstd dictionary (:func:`train`) or, without zstd's
    dictionary magic, raw content (:data:`BUILTIN`)."""

    def __init__(self, number: int, dictionary: bytes) -> None:
        loaded = zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_AUTO)
        self._head = b"z" + _id_bytes(number)
        self._compressor = zstandard.ZstdCompressor(
            dict_data=loaded, compression_params=_PARAMETERS
        )
        self._decompressor = zstandard.ZstdDecompressor(
            dict_data=loaded, format=zstandard.FORMAT_ZSTD1_MAGICLESS
        )

    def pack_marked(self, text: bytes) -> bytes:
        """A packed body of an already :func:`marked` stored form."""
        return self._head + self._compressor.compress(text)

    def pack(self, stored: bytes, field: str) -> bytes:
        return self.pack_marked(marked(stored, field))

    def unpack(self, body: bytes, field: str, start: int) -> bytes:
        """The stored form a packed ``body`` holds (its frame from ``start``)."""
        frame = body[start:]
        try:
            text = self._decompressor.decompress(frame, max_output_size=OUTPUT_GUESS)
        except zstandard.ZstdError:  # larger than the guess (or corrupt: raises again)
            text = self._decompressor.decompressobj().decompress(frame)
        return unmarked(text, field)


def pack(stored: bytes, field: str, number: int, dictionary: bytes) -> bytes:
    """``stored`` packed with dictionary ``number`` (``dictionary`` its bytes) for the
    record at ``field``; deterministic for given bytes (and zstd build). Sets up a
    :class:`Codec` each call: for tests and one-offs."""
    return Codec(number, dictionary).pack(stored, field)


def unpack(body: bytes, field: str, dictionary: bytes, start: int) -> bytes:
    """The stored form a packed ``body`` holds (its frame from ``start``)."""
    return Codec(0, dictionary).unpack(body, field, start)


def train(samples: Sequence[bytes]) -> bytes:
    """A zstd dictionary of at most :data:`DICTIONARY_SIZE` bytes from sample
    :func:`marked` stored forms (a few thousand: zstd's builder wants many, and fails
    with too few: ZstdError). Deterministic: the same samples give the same bytes."""
    return zstandard.train_dictionary(DICTIONARY_SIZE, list(samples)).as_bytes()


def packed_size(samples: Sequence[bytes], dictionary: bytes) -> int:
    """The bytes :func:`marked` ``samples`` take packed with ``dictionary`` (with a
    codec of its own: safe in any thread)."""
    codec = Codec(0, dictionary)
    return sum(len(codec.pack_marked(text)) for text in samples)


@dataclass(frozen=True)
class Trained:
    """A dictionary worth publishing, and what it packed its held-out samples to."""

    dictionary: bytes
    held_out_bytes: int


@dataclass(frozen=True)
class Candidate:
    """The work of training a candidate dictionary, independent of the table that
    asked for it (so a worker thread may do it while the table packs on)."""

    older: list[bytes]  # training samples
    newest: list[bytes]  # held out, to judge it
    now: int  # what the current dictionary packs ``newest`` to

    def run(self) -> Trained | None:
        """The candidate, if it packs the held-out samples to at most :data:`GAIN` of
        what the current dictionary makes of them."""
        made = train(self.older)
        size = packed_size(self.newest, made)
        return Trained(made, size) if size <= GAIN * self.now else None


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
        self._known: dict[int, Codec] = {0: Codec(0, BUILTIN)}
        self._baseline: dict[int, int] = {}  # held-out bytes when adopted, per dictionary
        self.current = 0
        self._pool: list[bytes] = []  # the reservoir: a uniform sample of all packed
        self._recent: deque[bytes] = deque(maxlen=HELD_OUT)
        self._packed = 0  # records packed in all
        self._draw = random.Random(0)  # the reservoir's choices (deterministic)
        self._skip = _Skips(SAMPLES - HELD_OUT, self._draw)
        self._next = 0  # the record (counted past the newest) the reservoir takes next
        self._since = 0  # records packed since the last look at the current dictionary
        self.training = False  # a candidate is being trained (by the store, off-loop)

    def knows(self, number: int) -> bool:
        return number in self._known

    def learn(self, number: int, dictionary: bytes, held_out_bytes: int | None = None) -> None:
        """Dictionary ``number`` as read from the store (or just published, with what
        it packed its held-out samples to)."""
        self._known[number] = Codec(number, dictionary)
        if held_out_bytes is not None:
            self._baseline[number] = held_out_bytes
        self.current = max(self.current, number)

    def pack(self, stored: bytes, field: str) -> bytes:
        """``stored`` packed with the current dictionary (and kept as a sample)."""
        text = marked(stored, field)
        self._keep(text)
        self._since += 1
        return self._known[self.current].pack_marked(text)

    def _keep(self, text: bytes) -> None:
        """Keep ``text`` as a sample: among the newest, and in the reservoir with the
        chance every record packed so far had. Li's algorithm L draws how many records
        to pass over before the next one the reservoir takes, instead of a draw per
        record (algorithm R's randrange was ~1 µs of every record a batch packs)."""
        self._packed += 1
        recent = self._recent
        if len(recent) == HELD_OUT:
            left = self._packed - HELD_OUT  # records that have left the newest, this one too
            if left == self._next:  # the one leaving now replaces a random sample
                self._pool[self._skip.slot()] = recent[0]
                self._next = left + self._skip.gap()
            elif left <= SAMPLES - HELD_OUT:  # the reservoir fills first
                self._pool.append(recent[0])
                if left == SAMPLES - HELD_OUT:
                    self._next = left + self._skip.gap()
        recent.append(text)

    def unpack(self, body: bytes, field: str) -> bytes:
        """The stored form of ``body``, packed or not; a packed body's dictionary must
        be known (:meth:`knows`; else KeyError)."""
        if body[0] != MARK:
            return body
        number, start = dictionary_of(body)
        return self._known[number].unpack(body, field, start)

    def due(self) -> bool:
        """Whether enough records were packed since the last look to look again."""
        held = len(self._pool) + len(self._recent)
        return not self.training and self._since >= TRAIN_EVERY and held >= SAMPLES

    def candidate(self) -> Candidate | None:
        """Training to do (:meth:`Candidate.run`, in any thread), if the current
        dictionary is 0 or packs the newest samples to more than 1/:data:`GAIN` of its
        baseline (what it made of its held-out samples when adopted; for one another
        process trained, what it makes of the samples at this process's first look);
        resets :meth:`due` either way."""
        self._since = 0
        older, newest = list(self._pool), list(self._recent)
        codec = self._known[self.current]
        now = sum(len(codec.pack_marked(text)) for text in newest)
        if self.current:
            baseline = self._baseline.setdefault(self.current, now)
            if GAIN * now < baseline:
                return None
        return Candidate(older, newest, now)


class _Skips:
    """Li's algorithm L for a reservoir of ``size`` samples ("Reservoir-sampling
    algorithms of time complexity O(n(1 + log(N/n)))", ACM TOMS 1994): once the reservoir
    is full, the gaps between the records it takes, each record of the stream taken with
    the chance ``size / seen`` as with algorithm R, at three draws per record taken.

    >>> skips = _Skips(4, random.Random(0))
    >>> gaps = [skips.gap() for _ in range(6)]
    >>> all(g >= 1 for g in gaps) and gaps[-1] > gaps[0]
    True
    """

    __slots__ = ("_size", "_draw", "_w")

    def __init__(self, size: int, draw: random.Random) -> None:
        self._size = size
        self._draw = draw
        self._w = self._shrink(1.0)

    def _shrink(self, w: float) -> float:
        # 1 - random() is in (0, 1]: never log(0)
        return w * math.exp(math.log(1.0 - self._draw.random()) / self._size)

    def gap(self) -> int:
        """Records from the one just taken (or the last to fill the reservoir) to the
        next one taken."""
        w = self._w
        if w >= 1.0:  # the draw was 1.0 - 0.0 (one in 2**53): take the next record
            gap = 1
        else:
            gap = int(math.log(1.0 - self._draw.random()) / math.log1p(-w)) + 1
        self._w = self._shrink(w)
        return gap

    def slot(self) -> int:
        """The sample the record taken replaces."""
        return self._draw.randrange(self._size)
