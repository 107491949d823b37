"""``nonsite evidence purge [--dry-run]`` as a user runs it, on a SQLite system of record and an evidence folder:
the dry run lists each case that would lose its files and changes nothing; the run deletes them, and leaves
a held case's and a recent case's files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import func, select

from history import schema
from history.custody import place_hold
from history_support import T0, make_incident, new_store, put
from nonsite.evidence import EvidenceStore

PROJECT = Path(__file__).resolve().parents[2]
LONG_AGO = T0 - timedelta(days=6 * 365)


def city_folder(tmp_path: Path, database: Path | str, evidence: Path) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    system = yaml.safe_load((folder / "nonsite.yaml").read_text(encoding="utf-8"))
    system["history"] = {"database": str(database), "evidence_retention_days": 1827}
    system["detector"]["evidence_dir"] = str(evidence)
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True), encoding="utf-8")
    return folder


def purge(folder: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "NONSITE_DATABASE"}
    return subprocess.run([sys.executable, "-m", "nonsite.cli", "--config", str(folder), "evidence", "purge",
                           "--no-sync", *args], capture_output=True, text=True, timeout=120, cwd=PROJECT,
                          env=environment)


def table_sizes(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {name: connection.execute(select(func.count()).select_from(table)).scalar()
                for name, table in schema.METADATA.tables.items()}


def test_the_dry_run_lists_and_the_run_deletes(tmp_path: Path) -> None:
    database, files = tmp_path / "history.sqlite", EvidenceStore(tmp_path / "evidence")
    writer, store = new_store(str(database))
    old = [files.put(b"\xff\xd8\xff" + name.encode() * 100, "annotated") for name in ("scene", "plate")]
    held, recent = (files.put(b"\xff\xd8\xff" + name.encode() * 100, "annotated") for name in ("held", "recent"))
    put(writer, make_incident("CLOSED", LONG_AGO, "old-case", first_seen=LONG_AGO, evidence=old),
        make_incident("CLOSED", LONG_AGO, "held-case", first_seen=LONG_AGO, evidence=[held]),
        make_incident("CLOSED", T0, "recent-case", evidence=[recent]))
    place_hold(store.engine, "held-case", "U002", "行政诉讼")
    folder = city_folder(tmp_path, database, files.root)
    before = table_sizes(store.engine)
    size = sum(files.locate(e.sha256).stat().st_size for e in old)
    shas = ",".join(sorted(e.sha256 for e in old))

    dry = purge(folder, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    closed_day = (LONG_AGO + timedelta(hours=8)).date().isoformat()  # Shanghai's day of the closing
    assert dry.stdout.splitlines() == [
        f"old-case  CLOSED {closed_day}  2 file(s)  {size} bytes  {shas}",
        f"1 case(s), 2 file(s), {size} bytes would be deleted (dry run: nothing changed); cases that ended before "
        f"{dry.stdout.split('ended before ')[1][:10]} (history.evidence_retention_days = 1827), none on legal hold"]
    assert table_sizes(store.engine) == before and all(files.locate(e.sha256) for e in (*old, held, recent))

    run = purge(folder)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == dry.stdout.splitlines()[0]
    assert run.stdout.splitlines()[1].startswith(f"1 case(s), 2 file(s), {size} bytes deleted; ")
    assert not any(files.locate(e.sha256) for e in old) and files.locate(held.sha256) and files.locate(recent.sha256)
    assert [e.action for e in store.history("old-case")] == ["evidence_purged"]
    assert purge(folder).stdout.startswith("0 case(s), 0 file(s), 0 bytes deleted")
    store.engine.dispose()


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    folder = city_folder(tmp_path, "postgresql+psycopg://nonsite:secret@127.0.0.1:1/none", tmp_path / "evidence")
    result = purge(folder, "--dry-run")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("nonsite: history.database postgresql+psycopg://nonsite:***@127.0.0.1:1/none: ")
    assert len(result.stderr.strip().splitlines()) == 1
