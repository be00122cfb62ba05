"""The event log: group-committed fsync, idempotency by id, replay, torn tails, damaged lines."""

from __future__ import annotations

import threading

import pytest

from tastemaker.errors import DataError
from tastemaker.serving.events import EventLog, decode_line, encode_line


def _ev(i, **extra):
    return {"kind": "event", "id": f"e{i}", "event": {"n": i, **extra}}


def test_lines_carry_a_checksum_that_catches_damage():
    line = encode_line(_ev(1))
    assert decode_line(line[:-1]) == _ev(1)
    damaged = line[:-3] + b"9" + line[-2:]
    assert decode_line(damaged[:-1]) is None
    assert decode_line(b"garbage") is None


def test_written_records_are_replayed_in_order(tmp_path):
    log = EventLog(tmp_path / "events.log")
    assert log.open() == []
    log.write([_ev(i) for i in range(5)])
    log.write([{"kind": "item", "item_id": "x", "item": {"price": 1.0}}])
    log.close()
    again = EventLog(tmp_path / "events.log")
    records = again.open()
    assert [r.get("id") for r in records] == ["e0", "e1", "e2", "e3", "e4", None]
    assert records[-1]["item"] == {"price": 1.0}
    assert "e3" in again and "e9" not in again
    again.close()


def test_the_same_id_is_stored_once_even_across_restarts(tmp_path):
    log = EventLog(tmp_path / "events.log")
    log.open()
    first = log.write([_ev(1)])
    second = log.write([_ev(1, changed=True)])
    assert not first[0].duplicate and second[0].duplicate
    log.close()
    log = EventLog(tmp_path / "events.log")
    log.open()
    assert log.write([_ev(1)])[0].duplicate
    log.close()
    lines = (tmp_path / "events.log").read_bytes().splitlines()
    assert len(lines) == 1


def test_a_duplicate_in_flight_waits_for_the_first_copy(tmp_path):
    log = EventLog(tmp_path / "events.log")
    log.open()
    subs = log.submit([_ev(7), _ev(7), _ev(8)])
    assert [s.duplicate for s in subs] == [False, True, False]
    assert subs[1].future is subs[0].future  # resolves only when the first copy is durable
    for s in subs:
        s.future.result(5)
    log.close()
    assert len((tmp_path / "events.log").read_bytes().splitlines()) == 2


def test_concurrent_writers_share_commits_and_every_ack_is_on_disk(tmp_path):
    committed = []
    log = EventLog(tmp_path / "events.log", on_commit=lambda recs: committed.extend(r["id"] for r in recs))
    log.open()
    acked: list[str] = []
    lock = threading.Lock()

    def writer(t):
        for i in range(50):
            sub = log.submit([_ev(f"{t}-{i}")])[0]
            sub.future.result(10)
            with lock:
                acked.append(sub.id)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.records == 400
    assert log.commits <= 400
    assert sorted(committed) == sorted(acked)
    log.close()
    replayed = EventLog(tmp_path / "events.log").open()
    assert sorted(r["id"] for r in replayed) == sorted(acked)


def test_a_torn_last_line_is_cut_and_writing_goes_on(tmp_path):
    path = tmp_path / "events.log"
    log = EventLog(path)
    log.open()
    log.write([_ev(1), _ev(2)])
    log.close()
    whole = path.read_bytes()
    path.write_bytes(whole + encode_line(_ev(3))[:20])  # a crash in the middle of a write
    log = EventLog(path)
    assert [r["id"] for r in log.open()] == ["e1", "e2"]
    assert log.truncated_bytes == 20
    log.write([_ev(4)])
    log.close()
    assert [r["id"] for r in EventLog(path).open()] == ["e1", "e2", "e4"]


def test_a_damaged_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "events.log"
    lines = [encode_line(_ev(i)) for i in range(3)]
    lines[1] = lines[1].replace(b'"n":1', b'"n":5')
    path.write_bytes(b"".join(lines))
    with pytest.raises(DataError, match="line 2") as err:
        EventLog(path).open()
    assert err.value.line == 2


def test_submitting_to_a_closed_log_is_refused(tmp_path):
    log = EventLog(tmp_path / "events.log")
    with pytest.raises(RuntimeError, match="not open"):
        log.submit([_ev(1)])
    log.open()
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.submit([_ev(1)])
