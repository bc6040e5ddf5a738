"""A PostgreSQL server a test may crash (SIGKILL of every PostgreSQL process) and restart on
the same data directory and port, for crash-consistency tests.

Unlike the throwaway test server it commits synchronously: an acknowledged commit is in the
WAL that survives the crash (fsync stays off: the processes die, not the machine, so the
page cache keeps what was written)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tradeplane.testing.ports import free_port
from tradeplane.testing.servers import (
    POSTGRES_HOWTO,
    ServerUnavailable,
    _start_postgres_process,
    _unprivileged_user,
    postgres_answers,
    postgres_bindir,
)

_DURABLE = {"synchronous_commit": "on"}


class CrashablePostgres:
    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerUnavailable(f"no PostgreSQL binaries found: {POSTGRES_HOWTO}")
        self._bindir = bindir
        self._base = Path(tempfile.mkdtemp(prefix="tradeplane-crash-pg-"))
        self._data = self._base / "data"
        self._log = self._base / "server.log"
        user = _unprivileged_user()
        self._ids: tuple[int | None, int | None, list[int] | None] = (None, None, None)
        if user is not None:
            os.chown(self._base, user.pw_uid, user.pw_gid)
            self._ids = (user.pw_uid, user.pw_gid, [])
        self._env = {**os.environ, "LC_ALL": "C", "HOME": str(self._base)}
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        uid, gid, groups = self._ids
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self._data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
            ],
            cwd=self._base,
            env=self._env,
            capture_output=True,
            text=True,
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        if init.returncode != 0:
            shutil.rmtree(self._base, ignore_errors=True)
            raise ServerUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> CrashablePostgres:
        uid, gid, groups = self._ids
        self._process, _ = _start_postgres_process(
            self._bindir,
            self._base,
            self._data,
            self._log,
            self._env,
            uid,
            gid,
            groups,
            port=self.port,
            overrides=_DURABLE,
        )
        deadline = time.monotonic() + timeout
        while not postgres_answers(self.url, timeout=1):
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"PostgreSQL did not start: {self.log()[-800:]}")
            time.sleep(0.1)
        return self

    def crash(self) -> None:
        """SIGKILL the postmaster and every backend (its process group): no shutdown at all."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(10)
        self._process = None

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self.crash()
        shutil.rmtree(self._base, ignore_errors=True)
