"""A throwaway PostgreSQL cluster from Debian's `postgresql` package, for the tests that need a real one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.helpers import free_port


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class Cluster:
    """initdb, then pg_ctl start on a free port (run as `postgres` when we are root: initdb refuses root)."""

    def __init__(self):
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("the PostgreSQL tests need Debian's postgresql: apt-get install postgresql")
        self._bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", "rag", "--auth=trust", "-E", "UTF8")
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        self.url = f"postgresql://rag@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(self._bindir / tool), *args], check=True, capture_output=True, timeout=120)

    def new_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://rag@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
