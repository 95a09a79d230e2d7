"""The audit trail: a hash chain that shows edits, reorderings and deletions; a head noted earlier that shows
the newest entries cut off; one chain under concurrent writers on both engines; what gets recorded;
`vigil audit verify` and `vigil audit show`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from vigil.security.audit import GENESIS_HASH, AuditEvent, Head, head_problems, next_entry, verify_chain, verify_log
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

KEY = b"k" * 32


def _chain(n: int) -> list:
    entries, seq, prev = [], 0, GENESIS_HASH
    for i in range(n):
        entry = next_entry(
            seq, prev, AuditEvent("user:dr_who", "read", f"p{i}", "GET /x", "ok", {"i": i}), "2026-01-01T00:00:00Z", KEY
        )
        entries.append(entry)
        seq, prev = entry.seq, entry.hash
    return entries


def test_intact_chain_verifies():
    assert verify_chain(_chain(5), KEY) == []
    assert verify_chain([], KEY) == []


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda es: [es[0], replace(es[1], actor="user:nobody"), *es[2:]], "entry 2: content does not match its hash"),
        (lambda es: [es[0], replace(es[1], details='{"i":99}'), *es[2:]], "entry 2: content does not match its hash"),
        (lambda es: [es[0], es[2], es[1], *es[3:]], "expected entry 2 here"),
        (lambda es: [es[0], *es[2:]], "expected entry 2 here"),
        (lambda es: es[1:], "expected entry 1 here"),
    ],
    ids=["edited actor", "edited details", "reordered", "deleted", "first deleted"],
)
def test_tampering_is_detected(tamper, message):
    problems = verify_chain(tamper(_chain(5)), KEY)
    assert any(message in p for p in problems), problems


def test_rebuilt_chain_without_the_key_is_detected():
    """Someone who edits an entry and recomputes every hash after it still cannot produce the HMACs."""
    entries = _chain(4)
    forged, seq, prev = entries[:1], entries[0].seq, entries[0].hash
    for entry in entries[1:]:
        event = AuditEvent(
            "user:mallory" if entry.seq == 2 else entry.actor,
            entry.action,
            entry.patient_id,
            entry.resource,
            entry.outcome,
            json.loads(entry.details),
        )
        rebuilt = next_entry(seq, prev, event, entry.time, b"not the key")
        forged.append(rebuilt)
        seq, prev = rebuilt.seq, rebuilt.hash
    problems = verify_chain(forged, KEY)
    assert problems and all("HMAC does not match" in p for p in problems) and len(problems) == 3


def test_a_head_noted_before_shows_the_newest_entries_cut_off():
    entries = _chain(5)
    head = Head(5, entries[4].hash)
    assert verify_chain(entries[:3], KEY) == []  # the chain alone cannot tell
    assert head_problems(head, entries[4]) == [] and head_problems(Head(0, GENESIS_HASH), None) == []
    assert "newest entries were deleted" in head_problems(head, None)[0]
    assert "cut back and rewritten" in head_problems(head, replace(entries[4], hash="f" * 64))[0]
    assert Head.parse(f" {head}\n") == head
    for bad in ("5", "x:" + "a" * 64, "5:" + "a" * 63, "5:" + "A" * 64, f"-1:{'a' * 64}"):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            Head.parse(bad)


def _append_concurrently(url: str, writers: int, each: int) -> None:
    def write(n: int) -> None:
        store = SqlStore(url)
        for i in range(each):
            store.append_audit([AuditEvent(f"user:w{n}", "read", None, "test", "ok", {"i": i})])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Log:
    """An audit log over a list of entries, read two at a time."""

    def __init__(self, entries: list):
        self.entries = entries

    def audit_entries(self, after_seq: int = 0) -> list:
        return [e for e in self.entries if e.seq > after_seq][:2]

    def audit_entry(self, seq: int):
        return next((e for e in self.entries if e.seq == seq), None)


def test_verifying_the_log_reads_every_batch_and_finds_an_edit():
    entries = _chain(5)
    intact = verify_log(_Log(entries), KEY)
    assert intact.intact and intact.entries == 5 and intact.head == Head(5, entries[-1].hash)
    edited = verify_log(_Log([*entries[:2], replace(entries[2], actor="user:mallory"), *entries[3:]]), KEY)
    assert not edited.intact and edited.problems == ["entry 3: content does not match its hash (edited)"]
    assert edited.entries == 5


def test_verifying_the_log_against_a_head_finds_the_newest_entries_cut():
    entries = _chain(5)
    assert verify_log(_Log(entries), KEY, Head(5, entries[4].hash)).intact
    cut = verify_log(_Log(entries[:4]), KEY, Head(5, entries[4].hash))
    assert cut.problems == ["entry 5: missing, but it was the head before (the newest entries were deleted)"]


def test_verifying_the_log_keeps_its_head_in_a_file(tmp_path):
    entries, head_file = _chain(5), tmp_path / "head"
    assert verify_log(_Log(entries[:3]), KEY, head_file=head_file).intact  # no file yet: nothing expected, head noted
    assert head_file.read_text() == f"3:{entries[2].hash}\n"
    assert verify_log(_Log(entries), KEY, head_file=head_file).intact  # grown: the head moves on
    cut = verify_log(_Log(entries[:4]), KEY, head_file=head_file)
    assert not cut.intact and head_file.read_text() == f"5:{entries[4].hash}\n"  # a failed check keeps the old head
    head_file.write_text("12")
    with pytest.raises(ValueError, match="SEQ:HASH"):
        verify_log(_Log(entries), KEY, head_file=head_file)


def test_concurrent_writers_share_one_chain(any_store_url):
    SqlStore(any_store_url)  # create the schema and keys once
    _append_concurrently(any_store_url, writers=4, each=15)
    store = SqlStore(any_store_url)
    entries = store.audit_entries()
    assert [e.seq for e in entries] == list(range(1, 61))
    assert verify_chain(entries, store.keys.audit) == []


def test_concurrent_processes_share_one_chain(settings):
    SqlStore(settings.db_url)
    script = (
        "import sys\nfrom vigil.store import SqlStore\nfrom vigil.security.audit import AuditEvent\n"
        "s = SqlStore(sys.argv[1])\n"
        "for i in range(20): s.append_audit([AuditEvent('worker', 'ingest', None, 'x', 'ok', {'i': i})])\n"
    )
    env = {**os.environ, "VIGIL_HOME": str(settings.home)}
    processes = [subprocess.Popen([sys.executable, "-c", script, settings.db_url], env=env) for _ in range(3)]
    assert [p.wait(60) for p in processes] == [0, 0, 0]
    store = SqlStore(settings.db_url)
    assert len(store.audit_entries()) == 60 and verify_chain(store.audit_entries(), store.keys.audit) == []


def _actions(store: SqlStore) -> list[tuple]:
    return [(e.actor, e.action, e.patient_id, e.outcome) for e in store.audit_entries()]


def test_reads_writes_logins_and_ingest_are_recorded(ward):
    store = ward.ctx.store
    now = utc_now()
    readings = [
        {"metric": "heart_rate", "value": 70, "time": format_time(now - timedelta(minutes=m)), "seq": m}
        for m in range(5)
    ]
    assert ward.ingest(readings).json()["accepted"] == 5
    assert ward.ingest(readings).json()["duplicates"] == 5  # nothing stored: nothing written to record
    headers = ward.login("dr_who")
    ward.client.get(f"/api/v1/patients/{ward.patient_id}", headers=headers)
    ward.client.get(f"/api/v1/patients/{ward.other_patient_id}/readings", headers=headers)
    ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": "wrong"})
    actions = _actions(store)
    device = f"device:{ward.device_id}"
    assert actions == [
        (device, "ingest", ward.patient_id, "ok"),
        ("user:dr_who", "login", None, "ok"),
        ("user:dr_who", "read", ward.patient_id, "ok"),
        ("user:dr_who", "read", ward.other_patient_id, "denied"),
        ("user:dr_who", "login", None, "failed"),
    ]
    ingest, read = store.audit_entries()[0], store.audit_entries()[2]
    assert json.loads(ingest.details)["accepted"] == 5 and ingest.resource == "readings"
    assert read.resource == f"GET /api/v1/patients/{ward.patient_id}"
    assert json.loads(read.details)["address"] == "testclient" and json.loads(read.details)["request_id"]


def test_admin_list_reads_name_every_patient_they_returned(ward):
    ward.client.get("/api/v1/patients", headers=ward.login("root"))
    listing = ward.ctx.store.audit_entries()[-1]
    assert listing.actor == "user:root" and listing.patient_id is None
    assert json.loads(listing.details)["patients"] == sorted([ward.patient_id, ward.other_patient_id])
    assert listing in ward.ctx.store.audit_entries_for_patient(ward.other_patient_id)


def _vigil(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIGIL_HOME": str(settings.home), "VIGIL_DB": settings.db_url}
    return subprocess.run([sys.executable, "-m", "vigil", *args], env=env, capture_output=True, text=True, timeout=60)


def test_audit_show_answers_who_looked_and_verify_catches_an_edit(ward, settings):
    headers = ward.login("dr_who")
    ward.client.get(f"/api/v1/patients/{ward.patient_id}/risk", headers=headers)
    ward.client.get(f"/api/v1/patients/{ward.patient_id}/readings", headers=ward.login("ada"))
    shown = json.loads(_vigil(settings, "audit", "show", "--patient", ward.patient_id, "--json").stdout)
    who = [(e["actor"], e["resource"]) for e in shown if e["action"] == "read"]
    assert who == [
        ("user:dr_who", f"GET /api/v1/patients/{ward.patient_id}/risk"),
        ("user:ada", f"GET /api/v1/patients/{ward.patient_id}/readings"),
    ]
    assert all(e["patient_id"] == ward.patient_id for e in shown)
    verified = _vigil(settings, "audit", "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["intact"] is True

    with sqlite3.connect(settings.db_url.removeprefix("sqlite:///")) as conn:  # hide that dr_who looked
        conn.execute("UPDATE audit_log SET actor = 'user:root' WHERE actor = 'user:dr_who' AND action = 'read'")
    tampered = _vigil(settings, "audit", "verify", "--json")
    assert tampered.returncode == 1
    assert any("content does not match its hash" in p for p in json.loads(tampered.stdout)["problems"])


def test_verify_refuses_to_run_without_the_audit_key(settings, tmp_path):
    SqlStore(settings.db_url).append_audit([AuditEvent("system", "test")])
    env = {**os.environ, "VIGIL_HOME": str(tmp_path / "elsewhere"), "VIGIL_DB": settings.db_url}
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "no audit key" in result.stderr


def _delete_newest(settings, n: int) -> None:
    with sqlite3.connect(settings.db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq > (SELECT max(seq) FROM audit_log) - ?", (n,))


def test_verify_with_the_head_noted_before_catches_deleted_newest_entries(settings):
    store = SqlStore(settings.db_url)
    store.append_audit([AuditEvent("user:dr_who", "read", f"p{i}") for i in range(5)])
    noted = json.loads(_vigil(settings, "audit", "verify", "--json").stdout)["head"]
    expected = f"{noted['seq']}:{noted['hash']}"
    assert noted["seq"] == 5 and _vigil(settings, "audit", "verify", "--expect-head", expected).returncode == 0
    _delete_newest(settings, 2)  # hide the last two reads
    assert _vigil(settings, "audit", "verify").returncode == 0  # the shorter chain is intact
    cut = _vigil(settings, "audit", "verify", "--expect-head", expected, "--json")
    assert cut.returncode == 1 and json.loads(cut.stdout)["problems"] == [
        "entry 5: missing, but it was the head before (the newest entries were deleted)"
    ]
    store.append_audit(
        [AuditEvent("user:root", "read", f"q{i}") for i in range(3)]
    )  # cut and grown past the head again
    rewritten = _vigil(settings, "audit", "verify", "--expect-head", expected)
    assert rewritten.returncode == 1 and "entry 5: not the entry that was the head before" in rewritten.stdout
    bad = _vigil(settings, "audit", "verify", "--expect-head", "5")
    assert bad.returncode == 2 and "--expect-head" in bad.stderr


def test_verify_keeps_the_head_in_a_file_and_checks_it_next_time(settings, tmp_path):
    head_file = tmp_path / "anchor" / "audit-head"
    head_file.parent.mkdir()
    store = SqlStore(settings.db_url)
    store.append_audit([AuditEvent("user:dr_who", "read", f"p{i}") for i in range(3)])
    assert (
        _vigil(settings, "audit", "verify", "--head-file", str(head_file)).returncode == 0
    )  # first run: notes the head
    assert Head.parse(head_file.read_text()).seq == 3
    store.append_audit([AuditEvent("user:dr_who", "read", "p3")])
    assert (
        _vigil(settings, "audit", "verify", "--head-file", str(head_file)).returncode == 0
    )  # grown: fine, head moves on
    assert Head.parse(head_file.read_text()).seq == 4
    _delete_newest(settings, 1)
    cut = _vigil(settings, "audit", "verify", "--head-file", str(head_file))
    assert cut.returncode == 1 and "entry 4: missing" in cut.stdout
    assert Head.parse(head_file.read_text()).seq == 4  # a failed verify leaves the noted head alone
