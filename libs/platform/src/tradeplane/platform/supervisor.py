"""Runs the platform's processes: start in dependency order, wait for SERVING, watch them, and
stop them all on Ctrl-C / SIGTERM or when one dies."""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, TextIO

from tradeplane.platform.logtail import LogFollower, tail_lines
from tradeplane.platform.plan import PlannedService
from tradeplane.platform.readiness import SERVING, grpc_health, http_listening

_STOP_MARGIN_SECONDS = 5.0  # on top of the children's own shutdown grace


class LaunchError(Exception):
    """A process failed to start or died; ``details`` are the lines to show under the message."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class Interrupted(Exception):
    """Ctrl-C / SIGTERM arrived while starting."""


_SETPRIV = shutil.which("setpriv")


def _child_command(module: str) -> list[str]:
    """The child's argv. With util-linux's setpriv the child gets SIGTERM if the launcher itself
    is killed (-9), so no service is left holding its port. setpriv sets PR_SET_PDEATHSIG after
    fork in C; a Python preexec_fn would run in a child forked from a process with gRPC threads,
    which is unsafe and was seen to hang the launcher. Children get their own session, so a
    terminal's Ctrl-C reaches only the launcher, which then stops them in order."""
    command = [sys.executable, "-m", module]
    if _SETPRIV is None:
        return command
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *command]


@dataclass
class Child:
    planned: PlannedService
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    log_start: int
    follower: LogFollower
    ready: bool = False

    @property
    def name(self) -> str:
        return self.planned.name

    def tail(self, count: int = 20) -> list[str]:
        return tail_lines(self.planned.log_path, self.log_start, count)

    def probe(self) -> str:
        if self.planned.spec.kind == "grpc":
            return grpc_health(self.planned.address)
        return http_listening(self.planned.port)


class Supervisor:
    def __init__(self, out: TextIO, *, start_timeout: float) -> None:
        self.out = out
        self.start_timeout = start_timeout
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.force_requested = threading.Event()

    # -- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # SIGHUP too: closing the terminal stops the platform the same graceful way.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop_requested.is_set():
            self.force_requested.set()  # second Ctrl-C: do not wait for the grace period
        self.stop_requested.set()

    # -- starting --------------------------------------------------------------------------

    def start(self, planned: PlannedService) -> Child:
        planned.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = planned.log_path.open("ab")
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        log.write(f"=== tradeplane launcher: starting {planned.name} at {stamp} ===\n".encode())
        log.flush()
        start = log.tell()
        proc = subprocess.Popen(
            _child_command(planned.spec.module),
            env=dict(planned.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        follower = LogFollower(planned.name, planned.log_path, start, self.out)
        follower.start()
        child = Child(planned, proc, log, start, follower)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child) -> None:
        deadline = time.monotonic() + self.start_timeout
        status = "UNREACHABLE"
        while True:
            if self.stop_requested.is_set():
                raise Interrupted
            code = child.proc.poll()
            if code is not None:
                raise LaunchError(
                    f"{child.name} {describe_exit(code)} while starting; "
                    f"last lines of {child.planned.log_path}:",
                    child.tail(),
                )
            status = child.probe()
            if status == SERVING:
                child.ready = True
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"{child.name} did not report SERVING within {self.start_timeout:g}s "
                    f"(health: {status}); see {child.planned.log_path}, last lines:",
                    child.tail(),
                )
            self.stop_requested.wait(0.2)

    def find(self, name: str) -> Child | None:
        return next((c for c in self.children if c.name == name), None)

    # -- running ---------------------------------------------------------------------------

    def watch(self) -> None:
        """Block until a stop is requested (returns) or a child dies (raises LaunchError)."""
        while not self.stop_requested.wait(0.25):
            for child in self.children:
                code = child.proc.poll()
                if code is not None:
                    raise LaunchError(
                        f"{child.name} (pid {child.proc.pid}) {describe_exit(code)} "
                        f"unexpectedly; last lines of {child.planned.log_path}:",
                        child.tail(),
                    )

    # -- stopping --------------------------------------------------------------------------

    def stop_all(self) -> bool:
        """SIGTERM every child still running, wait for their grace period plus a margin, then
        SIGKILL stragglers. True when every signalled child exited 0."""
        running = [c for c in self.children if c.proc.poll() is None]
        if running:
            names = ", ".join(c.name for c in running)
            print(f"stopping {names} ...", file=self.out, flush=True)
        for child in reversed(running):  # dependents first
            child.proc.send_signal(signal.SIGTERM)
        grace = max((_grace_seconds(c) for c in running), default=0.0) + _STOP_MARGIN_SECONDS
        deadline = time.monotonic() + grace
        while any(c.proc.poll() is None for c in running):
            if time.monotonic() > deadline or self.force_requested.is_set():
                break
            time.sleep(0.05)
        clean = True
        for child in running:
            if child.proc.poll() is None:
                why = "second interrupt" if self.force_requested.is_set() else f"{grace:g}s"
                print(f"{child.name} did not stop ({why}); killing it", file=self.out, flush=True)
                child.proc.kill()
                child.proc.wait()
                clean = False
            elif child.proc.returncode != 0:
                print(
                    f"{child.name} {describe_exit(child.proc.returncode)} while stopping; "
                    f"see {child.planned.log_path}",
                    file=self.out,
                    flush=True,
                )
                clean = False
        for child in self.children:
            child.follower.stop()
            child.log.close()
        return clean


def describe_exit(code: int) -> str:
    """'exited with code 3' or 'was killed by SIGKILL' (Popen reports signals as -N)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _grace_seconds(child: Child) -> float:
    try:
        return float(child.planned.env.get("SHUTDOWN_GRACE_SECONDS", "10"))
    except ValueError:
        return 10.0
