"""Signed checkpoints: rewrites of the trail that the hash chain alone cannot see.

Each attack is done the way an insider with database access would: rewrite the tables,
recomputing every hash and moving the head, so the unsigned chain still checks out
(each test asserts that first). Only the checkpoints, signed with a key the database
does not hold, tell. Runs on SQLite and on a real Postgres.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner

from audit import AuditRecord, AuditTrail, ChainProblem, IncidentTrailExport, canonical_json
from audit.chain import GENESIS_HASH, record_hash, utc_iso
from audit.checkpoints import CheckpointLog, sign_checkpoint
from audit.configure import checkpoint_log, signing_key, trail_signing
from audit.offline import verify_export
from audit.signing import TrailKeyError, key_id, load_or_create_private_key, load_public_key
from cli.main import app as cli
from config import Settings
from contracts.audit import AuditEvent
from store.db import create_tables, make_engine

_AUDIT_TABLES = ("audit_record", "audit_head")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    SQLModel.metadata.drop_all(
        engine, tables=[SQLModel.metadata.tables[name] for name in _AUDIT_TABLES]
    )
    create_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", trail_checkpoint_every_records=10)


@pytest.fixture
def trail(engine: Engine, settings: Settings) -> AuditTrail:
    return AuditTrail(engine, trail_signing(settings))


def _event(
    n: int, incident: str = "inc-1", kind: str = "activity.completed", **detail: Any
) -> AuditEvent:
    return AuditEvent(
        event_id=f"ev-{n}",
        incident_id=incident,
        kind=kind,
        actor="worker:w1",
        step="route",
        attempt=1,
        detail={"n": n, **detail},
    )


def _fill(trail: AuditTrail, count: int, signoff_at: int | None = None) -> None:
    """``count`` records; the one at ``signoff_at`` a legal approval, the last a phase change."""
    for n in range(1, count + 1):
        if n == signoff_at:
            trail.append(_event(n, kind="signoff.decided", role="legal", decision="approve"))
        elif n == count:
            trail.append(_event(n, kind="phase.changed", to="resolved"))
        else:
            trail.append(_event(n))


def _forge(engine: Engine, records: list[AuditRecord]) -> None:
    """Replace the whole trail with ``records``, renumbered, rehashed, head moved: what
    someone holding the database (and not the key) can do."""
    prev = GENESIS_HASH
    forged = []
    for seq, original in enumerate(records, start=1):
        record = AuditRecord.model_validate({**original.model_dump(), "seq": seq})
        record.prev_hash = prev
        record.hash = prev = record_hash(prev, record.chained_fields())
        forged.append(record)
    with Session(engine) as session:
        session.execute(text("DELETE FROM audit_record"))
        session.add_all(forged)
        session.execute(
            text("UPDATE audit_head SET last_seq = :seq, last_hash = :hash"),
            {"seq": len(forged), "hash": prev},
        )
        session.commit()


def _unsigned_verdict(engine: Engine) -> bool:
    """What today's chain-only ``trail verify`` says."""
    return AuditTrail(engine).verify().ok


def test_an_intact_signed_trail_verifies_with_its_coverage(trail: AuditTrail) -> None:
    _fill(trail, 25, signoff_at=12)
    trail.append(_event(26))

    report = trail.verify()

    assert report.ok, report.problems
    assert report.checkpoints is not None
    assert report.checkpoints.signed_through == 25  # the phase change was signed at once
    assert report.checkpoints.unsigned_records == 1
    # the first append of the process, every 10 records, the sign-off, the phase change
    assert report.checkpoints.checkpoints == 5


def test_cutting_the_tail_and_moving_the_head_is_detected(
    trail: AuditTrail, engine: Engine
) -> None:
    _fill(trail, 20)
    _forge(engine, trail.records()[:15])
    assert _unsigned_verdict(engine)

    report = trail.verify()

    assert not report.ok
    assert report.problems == [
        ChainProblem(
            seq=20,
            problem="tail truncated: record 20 is signed, the last record is 15: the chain was "
            "changed after record 10 (the last one a checkpoint still vouches for) and at or "
            "before record 20",
        )
    ]


def test_turning_an_approval_into_a_rejection_and_rehashing_is_detected(
    trail: AuditTrail, engine: Engine
) -> None:
    _fill(trail, 20, signoff_at=12)
    records = trail.records()
    records[11].detail = canonical_json({"n": 12, "role": "legal", "decision": "reject"})
    _forge(engine, records)
    assert _unsigned_verdict(engine)

    report = trail.verify()

    assert not report.ok
    assert [p.seq for p in report.problems] == [12]
    assert report.problems[0].problem.startswith(
        "record 12 is not the record its checkpoint signed (and 1 later checkpoints): "
        "the chain was changed after record 10"
    )


def test_deleting_a_record_and_renumbering_is_detected(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 20)
    records = trail.records()
    _forge(engine, records[:6] + records[7:])
    assert _unsigned_verdict(engine)

    report = trail.verify()

    assert not report.ok
    assert [p.seq for p in report.problems] == [10]
    assert "changed after record 1 " in report.problems[0].problem


def test_a_checkpoint_signed_with_another_key_is_refused(
    trail: AuditTrail, settings: Settings
) -> None:
    _fill(trail, 5)
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), 5, trail.records()[-1].hash)
    checkpoint_log(settings).append(forged)

    problems = trail.verify().problems

    assert len(problems) == 1
    assert problems[0].seq == 5 and "is not signed by the trail key" in problems[0].problem


def test_removing_the_checkpoint_log_is_detected(trail: AuditTrail, settings: Settings) -> None:
    _fill(trail, 5)
    checkpoint_log(settings).path.unlink()

    assert trail.verify().problems == [
        ChainProblem(
            seq=5,
            problem="no signed checkpoint vouches for the trail: records 1-5 are protected "
            "by the hash chain alone",
        )
    ]


def test_an_unwritable_checkpoint_log_never_fails_an_append(engine: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = Settings(data_dir=tmp_path / "data", trail_checkpoint_dir=blocker)
    trail = AuditTrail(engine, trail_signing(settings))

    trail.append(_event(1, kind="phase.changed"))

    assert [r.seq for r in trail.records()] == [1]
    assert not trail.verify().ok


def test_the_key_is_generated_once_private_and_its_public_half_exported(
    settings: Settings,
) -> None:
    key = signing_key(settings)
    again = signing_key(settings)
    key_file = settings.resolved_trail_signing_key_file

    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert key_id(again.public_key()) == key_id(key.public_key())
    exported = load_public_key(settings.resolved_trail_public_key_file)
    assert key_id(exported) == key_id(key.public_key())

    os.chmod(key_file, 0o644)
    with pytest.raises(TrailKeyError, match="chmod 600"):
        load_or_create_private_key(key_file)


def _two_incidents(trail: AuditTrail) -> None:
    """inc-1's records interleaved with inc-2's, inc-1 ending in a phase change at 14."""
    for n in range(1, 16):
        incident = "inc-1" if n % 3 else "inc-2"
        kind = "phase.changed" if n == 14 else "activity.completed"
        trail.append(_event(n, incident=incident, kind=kind))


def _export_file(trail: AuditTrail, tmp_path: Path) -> Path:
    path = tmp_path / "inc-1.json"
    path.write_text(trail.export("inc-1", proof=True).model_dump_json())
    return path


def test_an_export_verifies_offline_with_only_the_public_key(
    trail: AuditTrail, settings: Settings, tmp_path: Path
) -> None:
    _two_incidents(trail)
    export = IncidentTrailExport.model_validate_json(_export_file(trail, tmp_path).read_text())
    public_key = load_public_key(settings.resolved_trail_public_key_file)

    report = verify_export(export, public_key)

    assert report.ok, report.problems
    assert [r.seq for r in export.records] == [1, 2, 4, 5, 7, 8, 10, 11, 13, 14]
    assert [r.seq for r in export.links] == [3, 6, 9, 12]  # not 15: the export ends at 14
    assert report.checkpoints is not None and report.checkpoints.signed_through == 14


def _tampered(export: IncidentTrailExport, how: str) -> IncidentTrailExport:
    data = json.loads(export.model_dump_json())
    records = data["records"]
    if how == "detail":
        records[3]["detail"]["n"] = 99
    elif how == "rehashed":
        merged = sorted(records + data["links"], key=lambda r: r["seq"])
        merged[3]["actor"] = "mallory"
        prev = merged[0]["prev_hash"]
        for record in merged:
            fields = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
            fields["detail"] = canonical_json(fields["detail"])
            fields["at"] = utc_iso(datetime.fromisoformat(record["at"]))
            record["prev_hash"] = prev
            record["hash"] = prev = record_hash(prev, fields)
    elif how == "dropped-link":
        data["links"].pop(1)
    elif how == "dropped-last":
        records.pop()
    elif how == "forged-checkpoint":
        other = sign_checkpoint(Ed25519PrivateKey.generate(), 14, records[-1]["hash"])
        data["checkpoints"] = [json.loads(other.model_dump_json())]
    return IncidentTrailExport.model_validate(data)


@pytest.mark.parametrize(
    ("how", "seq"),
    [
        ("detail", 5),
        ("rehashed", 10),  # record 4 rewritten: the checkpoint at 10 disagrees first
        ("dropped-link", 6),
        ("dropped-last", 14),
        ("forged-checkpoint", 14),
    ],
)
def test_a_tampered_export_fails_offline(
    trail: AuditTrail, settings: Settings, tmp_path: Path, how: str, seq: int
) -> None:
    _two_incidents(trail)
    export = trail.export("inc-1", proof=True)
    public_key = load_public_key(settings.resolved_trail_public_key_file)

    report = verify_export(_tampered(export, how), public_key)

    assert not report.ok
    assert report.problems[0].seq == seq, report.problems


def test_cli_verifies_an_export_file_offline(
    trail: AuditTrail, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_incidents(trail)
    good = _export_file(trail, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(_tampered(trail.export("inc-1", proof=True), "rehashed").model_dump_json())
    monkeypatch.setenv("FAIRLANE_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()

    key_out = tmp_path / "auditor.pub"
    shown = runner.invoke(cli, ["trail", "public-key", "--out", str(key_out)])
    assert shown.exit_code == 0 and "BEGIN PUBLIC KEY" in shown.output
    ok = runner.invoke(cli, ["trail", "verify", "--file", str(good), "--public-key", str(key_out)])
    assert ok.exit_code == 0, ok.output
    assert "trail intact: 14 records verified" in ok.output
    failed = runner.invoke(cli, ["trail", "verify", "--file", str(bad)])
    assert failed.exit_code == 1
    assert "seq 10: record 10 is not the record its checkpoint signed" in failed.output


def test_cli_signs_the_head_on_demand(
    engine: Engine, database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    AuditTrail(engine).append(_event(1))  # an unsigned writer: nothing vouches for it yet
    monkeypatch.setenv("FAIRLANE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FAIRLANE_DATABASE_URL", database_url)

    result = CliRunner().invoke(cli, ["trail", "checkpoint"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("signed record 1 ")
    checkpoints, unreadable = CheckpointLog(checkpoint_log(settings).path).read()
    assert [c.seq for c in checkpoints] == [1] and unreadable == []
