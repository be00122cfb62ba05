"""The durable event log: a write-ahead log file, group-committed with fsync, idempotent by id.

Every accepted write (an event, an item upsert) is one line::

    <crc32 of the JSON, 8 hex digits> <JSON record>\\n

`EventLog.submit(records)` queues the lines and returns a future; one writer thread takes every
line queued so far, writes them, flushes and fsyncs once (group commit: concurrent requests share
an fsync), then resolves their futures. The service answers 2xx only after its future resolved,
so an acknowledged event is on disk. Records with an ``id`` are idempotent: an id already logged
(or in flight) is not written again, and its submitter is told it was a duplicate — after the
first copy is durable.

On `open()` the log is replayed: ids are collected for deduplication and every record is handed
back so the caller rebuilds its in-memory state. A torn last line (the process died mid-write) is
cut off; a damaged line elsewhere is an error that names the line.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastemaker.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """One submitted record: `duplicate` when its id was already logged or in flight; `future`
    resolves (to None) once the record — or its first copy — is durable."""

    id: str | None
    duplicate: bool
    future: Future


def encode_line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The record of one line (without its newline), or None when the line is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        rec = json.loads(body)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


class EventLog:
    """Append-only, fsynced, deduplicating log; see the module docstring.

    Args:
        path: the log file (created with its folder).
        fsync: fsync after every group commit (turn off only for throwaway benchmarks).
        on_commit: called in the writer thread with the records of each commit, in log order,
            after they are durable and before their futures resolve (apply them to state here).
        max_batch: most lines in one commit.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True,
                 on_commit: Callable[[list[dict[str, Any]]], None] | None = None, max_batch: int = 4096) -> None:
        self.path = Path(path)
        self.fsync = bool(fsync)
        self.on_commit = on_commit
        self.max_batch = int(max_batch)
        self._ids: set[str] = set()
        self._inflight: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._fh = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.records = 0
        self.commits = 0
        self.truncated_bytes = 0
        self.last_commit_seconds = 0.0
        self.commit_hook: Callable[[int, float], None] | None = None

    # --- opening and replay ---------------------------------------------------------------------
    def open(self) -> list[dict[str, Any]]:
        """Replay the log (collecting ids) and start the writer; returns every record in order."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        records = self._replay()
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the log's lifetime
        if self.fsync:
            _fsync_dir(self.path.parent)
        self._thread = threading.Thread(target=self._writer, name=f"event-log:{self.path.name}", daemon=True)
        self._thread.start()
        return records

    def _replay(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        good_end = 0
        start = 0
        lineno = 0
        while start < len(data):
            lineno += 1
            end = data.find(b"\n", start)
            if end < 0:  # a last line without its newline: torn write
                break
            rec = decode_line(data[start:end])
            if rec is None:
                if data.find(b"\n", end + 1) < 0 and not data[end + 1:].strip():
                    break  # the last complete line is damaged: torn write
                raise DataError(f"line {lineno} of the event log is damaged (checksum or JSON)", path=self.path,
                                line=lineno, hint="the log was changed by something else; move it aside, or cut it "
                                                  "before this line to keep the records before it")
            records.append(rec)
            rid = rec.get("id")
            if rid is not None:
                self._ids.add(str(rid))
            start = good_end = end + 1
        if good_end < len(data):
            self.truncated_bytes = len(data) - good_end
            log.warning("event log %s: cutting a torn last record (%d bytes) left by a crash", self.path,
                        self.truncated_bytes)
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        self.records = len(records)
        return records

    # --- writing ----------------------------------------------------------------------------------
    def __contains__(self, record_id: str) -> bool:
        return str(record_id) in self._ids

    def __len__(self) -> int:
        return self.records

    def submit(self, records: Iterable[dict[str, Any]]) -> list[Submitted]:
        """Queue records for the next group commit; a record's ``id`` (when present) dedupes it."""
        if self._closed or self._thread is None:
            raise RuntimeError("the event log is not open (call open() first) or is closed")
        out: list[Submitted] = []
        lines: list[tuple[bytes, dict[str, Any], str | None]] = []
        batch_future: Future = Future()
        with self._lock:
            for rec in records:
                rid = rec.get("id")
                rid = None if rid is None else str(rid)
                if rid is not None:
                    if rid in self._ids:
                        done: Future = Future()
                        done.set_result(None)
                        out.append(Submitted(rid, True, done))
                        continue
                    pending = self._inflight.get(rid)
                    if pending is not None:
                        out.append(Submitted(rid, True, pending))
                        continue
                    self._inflight[rid] = batch_future
                lines.append((encode_line(rec), rec, rid))
                out.append(Submitted(rid, False, batch_future))
        if lines:
            self._queue.put((lines, batch_future))
        else:
            batch_future.set_result(None)
        return out

    def write(self, records: Iterable[dict[str, Any]], timeout: float | None = 30.0) -> list[Submitted]:
        """`submit` and wait until durable (for callers without an event loop)."""
        subs = self.submit(records)
        for s in subs:
            s.future.result(timeout)
        return subs

    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            n = len(item[0])
            while n < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                n += len(nxt[0])
            self._commit(batch)

    def _commit(self, batch: list[tuple[list[tuple[bytes, dict[str, Any], str | None]], Future]]) -> None:
        t0 = time.perf_counter()
        payload = b"".join(line for lines, _ in batch for line, _, _ in lines)
        try:
            view = memoryview(payload)
            while view:
                written = self._fh.write(view)
                view = view[written:]
            if self.fsync:
                os.fsync(self._fh.fileno())
        except BaseException as exc:  # the disk refused: nothing of this batch is acknowledged
            log.exception("event log %s: write failed", self.path)
            with self._lock:
                for lines, _ in batch:
                    for _, _, rid in lines:
                        if rid is not None:
                            self._inflight.pop(rid, None)
            for _, fut in batch:
                fut.set_exception(OSError(f"the event log {self.path} could not be written: {exc}"))
            return
        records = [rec for lines, _ in batch for _, rec, _ in lines]
        with self._lock:
            for lines, _ in batch:
                for _, _, rid in lines:
                    if rid is not None:
                        self._ids.add(rid)
                        self._inflight.pop(rid, None)
            self.records += len(records)
            self.commits += 1
        self.last_commit_seconds = time.perf_counter() - t0
        if self.commit_hook is not None:
            self.commit_hook(len(records), self.last_commit_seconds)
        if self.on_commit is not None:
            try:
                self.on_commit(records)
            except Exception:  # state is rebuilt from the log on restart; a bad apply must not lose acks
                log.exception("event log %s: applying committed records failed", self.path)
        for _, fut in batch:
            fut.set_result(None)

    def close(self) -> None:
        """Finish the queued commits and close the file."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
        if self._fh is not None:
            self._fh.close()


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a newly created file's entry is durable too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
