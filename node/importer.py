"""``idnode import``: a file of identifiers streamed into a node's batch API.

The file is read line by line and cut into chunks (:mod:`node.import_chunks`), each
posted to ``POST /api/batch/handles?overwrite=true`` with the importer's credentials,
``in_flight`` chunks at once over keep-alive connections: while Redis fsyncs one chunk's
transaction, the node parses the next. The node validates and permission-checks every
item exactly as for any batch; a refused item is a reject (its line, handle and the
node's message), the rest go on. A chunk the node could not store (5xx, or an item
answered 5xx) is sent again, a few times, with growing pauses; then the import stops,
resumable. After each acknowledged chunk, in file order, the rejects are written and
the checkpoint moved (:mod:`node.import_checkpoint`).

>>> options = ImportOptions(Path("ids.ndjson"), "http://127.0.0.1:8001",
...                         Credentials("300:0.NA/88.100", "s"))   # doctest: +SKIP
>>> outcome = await Importer(options, progress=sys.stderr).run()     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import aiohttp
import orjson

from node.import_checkpoint import Checkpoint, Frontier, Source, load, save
from node.import_chunks import Chunk, Chunker, Reject
from node.import_format import CsvFormat, LineFormat, NdjsonFormat
from node.import_progress import Progress, summary
from registry.errors import (
    AuthenticationRequired,
    ConfigError,
    UpstreamUnavailable,
)
from resolver.upstream import Credentials

_READ_BUFFER = 1 << 20
_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)  # before each new attempt at a failed chunk


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What to import, where, and how (the ``idnode import`` options)."""

    file: Path
    url: str
    credentials: Credentials
    fmt: str = "ndjson"
    chunk: int = 2000
    in_flight: int = 4
    checkpoint: Path | None = None  # default: <file>.checkpoint
    rejects: Path | None = None  # default: <file>.rejects
    stop_on_error: bool = False
    restart: bool = False
    progress_every: float = 5.0

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.file.with_name(self.file.name + ".checkpoint")

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.file.with_name(self.file.name + ".rejects")


@dataclass(frozen=True, slots=True)
class Outcome:
    """Counts over the whole import (earlier interrupted runs included)."""

    imported: int
    rejected: int
    sent: int  # lines this run sent
    seconds: float
    stopped: bool  # --stop-on-error stopped it

    def summary(self) -> str:
        return summary(
            imported=self.imported, rejected=self.rejected, seconds=self.seconds, sent=self.sent
        )


@dataclass(slots=True)
class _Answered:
    chunk: Chunk
    imported: int
    rejects: list[Reject]


class Importer:
    """One import run: resumes from the checkpoint when there is one."""

    def __init__(self, options: ImportOptions, *, progress: TextIO | None = None) -> None:
        if options.chunk < 1 or options.in_flight < 1:
            raise ConfigError("--chunk and --in-flight are at least 1")
        self.options = options
        self._progress_out = progress
        self._url = options.url.rstrip("/") + "/api/batch/handles?overwrite=true"
        # NDJSON lines go unparsed; a chunk the node refuses is checked with this.
        self._strict = NdjsonFormat(strict=True) if options.fmt == "ndjson" else None
        self._headers = {
            "Authorization": options.credentials.header(),
            "Content-Type": "application/json",
        }

    async def run(self) -> Outcome:
        options = self.options
        source = Source.of(options.file)
        checkpoint = None if options.restart else load(options.checkpoint_path)
        if checkpoint is not None and (why := checkpoint.resumable_for(source)):
            raise ConfigError(
                f"cannot resume from {options.checkpoint_path}: {why}; "
                "rerun with --restart to import the whole file again"
            )
        self._checkpoint = checkpoint or Checkpoint(source)
        self._stop = False
        self._failure: BaseException | None = None
        with (
            options.file.open("rb", buffering=_READ_BUFFER) as lines,
            _rejects_file(options.rejects_path, self._checkpoint.rejects_bytes) as rejects,
        ):
            self._rejects = rejects
            fmt, line, offset = self._start(lines)
            chunker = Chunker(fmt, size=options.chunk, first_line=line, offset=offset)
            started = time.monotonic()
            self._shown = Progress(source.size, offset, line - 1)
            self._done_line, self._done_offset = line - 1, offset
            reporter = asyncio.create_task(self._report(started))
            try:
                await self._send_all(lines, chunker)
            finally:
                reporter.cancel()
            seconds = time.monotonic() - started
        if self._failure is not None:
            raise self._failure
        cp = self._checkpoint
        return Outcome(cp.imported, cp.rejected, cp.line - line, seconds, self._stop)

    def _start(self, lines: BinaryIO) -> tuple[LineFormat, int, int]:
        """The format, and the line and byte to start at."""
        cp = self._checkpoint
        fmt: LineFormat = NdjsonFormat()
        line, offset = cp.line, cp.offset
        if self.options.fmt == "csv":
            header = lines.readline()
            fmt = CsvFormat.from_header(header)
            if offset == 0:
                line, offset = 2, len(header)
        lines.seek(offset)
        return fmt, line, offset

    async def _send_all(self, lines: BinaryIO, chunker: Chunker) -> None:
        frontier: Frontier[_Answered] = Frontier(first=0)
        slots = asyncio.Semaphore(self.options.in_flight)
        tasks: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=self.options.in_flight)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def post(chunk: Chunk) -> None:
                try:
                    answered = await self._post(http, chunk)
                    for ready in frontier.answered(chunk.number, answered):
                        self._record(ready)
                except BaseException as exc:  # noqa: BLE001 - reported by run()
                    if self._failure is None and not isinstance(exc, asyncio.CancelledError):
                        self._failure = exc
                    self._stop = True
                finally:
                    slots.release()

            def chunks() -> list[Chunk]:
                for raw in lines:
                    if made := chunker.feed(raw):
                        return made
                return chunker.finish()

            while not self._stop:
                made = chunks()
                if not made:
                    break
                for chunk in made:
                    await slots.acquire()
                    if self._stop:
                        slots.release()
                        break
                    task = asyncio.create_task(post(chunk))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)

    async def _post(self, http: aiohttp.ClientSession, chunk: Chunk) -> _Answered:
        checked = self._strict is None  # NDJSON lines are checked in full only if refused
        problem = ""
        pauses = iter((*_PAUSES, None))
        while chunk.items:
            try:
                async with http.post(self._url, data=chunk.body(), headers=self._headers) as r:
                    status, raw = r.status, await r.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, raw, problem = 0, b"", f"{type(exc).__name__}: {exc}"
            answer = orjson.loads(raw) if status == 200 else None
            miscounted = answer is not None and len(answer["results"]) != len(chunk.items)
            if (status == 400 or miscounted) and not checked:
                assert self._strict is not None
                chunk, checked = chunk.checked(self._strict), True
                continue
            if answer is not None:
                if miscounted:
                    raise UpstreamUnavailable(
                        f"the node answered {len(answer['results'])} results "
                        f"for {len(chunk.items)} items"
                    )
                answered = self._answered(chunk, answer)
                if answered is not None:
                    return answered
                problem = "some items could not be stored (5xx)"
            elif status in (401, 403):
                raise AuthenticationRequired(f"the node refused the credentials: {_message(raw)}")
            elif status == 413:
                raise ConfigError("the node refused a chunk as too large: lower --chunk")
            elif 400 <= status < 500:
                raise ConfigError(f"the node refused a chunk (HTTP {status}): {_message(raw)}")
            elif status:
                problem = f"HTTP {status}: {_message(raw)}"
            pause = next(pauses)
            if pause is None or self._stop:
                raise UpstreamUnavailable(
                    f"lines {chunk.first_line}-{chunk.end_line - 1} failed ({problem}); "
                    "the import stopped: run the same command again to resume"
                )
            await asyncio.sleep(pause)
        return _Answered(chunk, 0, list(chunk.rejects))

    def _answered(self, chunk: Chunk, answer: dict[str, Any]) -> _Answered | None:
        """The chunk's outcome from the batch answer; None if an item must be retried."""
        rejects = list(chunk.rejects)
        if answer["failed"]:
            for line, result in zip(chunk.lines, answer["results"], strict=True):
                status = result["status"]
                if status >= 500:
                    return None  # stored nothing it could: the whole chunk again
                if status not in (200, 201):
                    reason = result.get("message", "")
                    rejects.append(
                        Reject(line, result["handle"], reason, status, result["responseCode"])
                    )
        return _Answered(chunk, answer["created"] + answer["updated"], rejects)

    def _record(self, answered: _Answered) -> None:
        """A chunk acknowledged in order: its rejects written, then the checkpoint."""
        cp = self._checkpoint
        if answered.rejects:
            rejects = sorted(answered.rejects, key=lambda r: r.line)
            self._rejects.write(b"".join(orjson.dumps(r.to_json()) + b"\n" for r in rejects))
            self._rejects.flush()
            os.fsync(self._rejects.fileno())
            if self.options.stop_on_error:
                self._stop = True
        chunk = answered.chunk
        self._checkpoint = Checkpoint(
            cp.source,
            line=chunk.end_line,
            offset=chunk.end_offset,
            imported=cp.imported + answered.imported,
            rejected=cp.rejected + len(answered.rejects),
            rejects_bytes=self._rejects.tell(),
        )
        save(self.options.checkpoint_path, self._checkpoint)
        self._done_line, self._done_offset = chunk.end_line - 1, chunk.end_offset

    async def _report(self, started: float) -> None:
        if self._progress_out is None:
            return
        while True:
            await asyncio.sleep(self.options.progress_every)
            line = self._shown.line(
                lines=self._done_line,
                done_bytes=self._done_offset,
                seconds=time.monotonic() - started,
            )
            print(line, file=self._progress_out, flush=True)


@contextmanager
def _rejects_file(path: Path, length: int) -> Iterator[BinaryIO]:
    """The rejects file, cut back to what the checkpoint counted."""
    with path.open("r+b" if path.exists() else "w+b") as out:
        out.truncate(length)
        out.seek(length)
        yield out


def _message(raw: bytes) -> str:
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode(errors="replace")
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        return str(answer["message"])
    return raw[:200].decode(errors="replace")
