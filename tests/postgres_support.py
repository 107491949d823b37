"""A real PostgreSQL server for the tests: Debian's binaries, a throwaway cluster, trust auth on localhost.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user the Debian
package creates.  The binaries are found in ``NONSITE_PG_BIN`` or ``/usr/lib/postgresql/<newest>/bin``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

import psycopg


def postgres_bin() -> Optional[Path]:
    configured = os.environ.get("NONSITE_PG_BIN")
    if configured:
        return Path(configured) if (Path(configured) / "initdb").exists() else None
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class LocalPostgres:
    """``start()`` returns a SQLAlchemy URL of an empty database ``nonsite``; ``stop()`` ends the server."""

    def __init__(self, folder: Path, port: int, binaries: Path):
        self.folder, self.port, self.binaries = folder, port, binaries
        self.data = folder / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self._wait_ready()
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute("CREATE DATABASE nonsite")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/nonsite"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def _wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [*self.as_postgres, str(self.binaries / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.folder)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
