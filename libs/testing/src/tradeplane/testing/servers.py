"""Find a real PostgreSQL / Redis server for the tests, in this order:

1. the URL in TEST_DATABASE_URL / TEST_REDIS_URL (an error, not a skip, if it does not answer);
2. the local server on 127.0.0.1:5432 (user postgres, trust auth) / 127.0.0.1:6379;
3. a testcontainers container when a Docker engine is reachable;
4. a throwaway server started from local binaries (initdb + postgres, redis-server) in a
   temporary directory on a free port, stopped and deleted at the end of the session.

When none works, ServerUnavailable says what to install; the fixtures turn it into a skip.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from sqlalchemy.engine import make_url

from tradeplane.testing.ports import free_port, port_is_open

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"

POSTGRES_HOWTO = (
    "set TEST_DATABASE_URL=postgresql://user@host:port/db, run PostgreSQL on 127.0.0.1:5432 "
    "(user postgres, trust auth), start a Docker engine (testcontainers), or install the server "
    "binaries (apt-get install postgresql) so a throwaway server can be started"
)
REDIS_HOWTO = (
    "set TEST_REDIS_URL=redis://host:port, run Redis on 127.0.0.1:6379, start a Docker engine "
    "(testcontainers), or install redis-server (apt-get install redis-server)"
)


class ServerUnavailable(Exception):
    """No server of this kind could be found or started; the message says what to install."""


@dataclass
class Server:
    """A running server. `url` is an admin URL: for Postgres a libpq URL (postgresql://) to a
    maintenance database as a superuser, for Redis redis://host:port/0."""

    url: str
    source: str  # "env", "local", "testcontainers" or "throwaway"
    workdir: Path | None = None  # a throwaway server's data directory, deleted by stop()
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def libpq_url(url: str) -> str:
    """postgresql+psycopg://... (SQLAlchemy style) -> postgresql://... (what libpq accepts)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_answers(url: str, timeout: int = 3) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _url_port_open(url: str) -> bool:
    # A quick TCP probe first, so a machine without the server does not wait on a client timeout.
    parts = urlsplit(url)
    return port_is_open(parts.hostname or "127.0.0.1", parts.port or 0)


def docker_reachable() -> bool:
    try:
        import docker  # type: ignore[import-untyped]  # testcontainers' dependency

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no docker package, no socket, daemon down: all mean "no Docker"
        return False


# --- PostgreSQL ---------------------------------------------------------------------------


def find_postgres() -> Server:
    env_url = os.environ.get("TEST_DATABASE_URL")
    if env_url:
        if not postgres_answers(env_url):
            raise RuntimeError("TEST_DATABASE_URL is set but the server does not answer")
        return Server(libpq_url(env_url), "env")
    if _url_port_open(LOCAL_POSTGRES_URL) and postgres_answers(LOCAL_POSTGRES_URL):
        return Server(LOCAL_POSTGRES_URL, "local")
    if docker_reachable():
        return _postgres_container()
    if postgres_bindir() is not None:
        return start_throwaway_postgres()
    raise ServerUnavailable(f"no PostgreSQL server for the tests: {POSTGRES_HOWTO}")


def _postgres_container() -> Server:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver=None)
    container.start()
    return Server(container.get_connection_url(), "testcontainers", _stop=container.stop)


def postgres_bindir() -> Path | None:
    """The directory holding initdb and postgres: the newest /usr/lib/postgresql/<v>/bin,
    else wherever initdb is on PATH."""

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for directory in candidates:
        if (Path(directory) / "initdb").exists() and (Path(directory) / "postgres").exists():
            return Path(directory)
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: when we are root, run it as postgres (or nobody)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerUnavailable("running as root and no 'postgres' or 'nobody' user to run as")


def start_throwaway_postgres(timeout: float = 60.0) -> Server:
    """initdb + postgres in a temporary directory on a free port (fsync off: test data only)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerUnavailable(f"no PostgreSQL binaries found: {POSTGRES_HOWTO}")
    base = Path(tempfile.mkdtemp(prefix="tradeplane-pg-"))
    user = _unprivileged_user()
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
        uid, gid, groups = user.pw_uid, user.pw_gid, []  # [] drops root's supplementary groups
    env = {**os.environ, "LC_ALL": "C", "HOME": str(base)}
    data, log = base / "data", base / "server.log"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
    init = subprocess.run(
        [*initdb, "-E", "UTF8", "--no-sync"],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        user=uid,
        group=gid,
        extra_groups=groups,
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    # A child forked from a process with gRPC threads occasionally dies before exec under heavy
    # load (grpc's fork handlers); the data directory is fine, so try a few times.
    for attempt in range(1, 4):
        try:
            process, url = _start_postgres_process(bindir, base, data, log, env, uid, gid, groups)
        except ServerUnavailable:
            if attempt == 3:
                shutil.rmtree(base, ignore_errors=True)
                raise
            continue
        break

    def stop() -> None:
        # SIGINT = PostgreSQL's "fast" shutdown: disconnect clients, stop at once.
        _stop_process(process, signal.SIGINT)
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)
    deadline = time.monotonic() + timeout
    while not postgres_answers(url, timeout=1):
        if process.poll() is not None or time.monotonic() > deadline:
            output = log.read_text(errors="replace")[-800:]
            stop()
            raise ServerUnavailable(f"throwaway PostgreSQL did not start: {output}")
        time.sleep(0.1)
    return Server(url, "throwaway", base, stop)


def _start_postgres_process(
    bindir: Path,
    base: Path,
    data: Path,
    log: Path,
    env: dict[str, str],
    uid: int | None,
    gid: int | None,
    groups: list[int] | None,
    port: int | None = None,
    overrides: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `postgres` on `port` (default: a free one); fail fast if the process dies in its
    first second. `overrides` replaces settings (e.g. synchronous_commit=on)."""
    port = port or free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(base),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        **(overrides or {}),
    }
    args: list[str | Path] = [bindir / "postgres", "-D", data]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            args,
            cwd=base,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on pytest must not kill it before we stop it
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1.0)
    if process.poll() is not None and not postgres_answers(url, timeout=1):
        raise ServerUnavailable(f"postgres exited with {process.returncode}")
    return process, url


# --- Redis --------------------------------------------------------------------------------


def find_redis() -> Server:
    env_url = os.environ.get("TEST_REDIS_URL")
    if env_url:
        if not redis_answers(env_url):
            raise RuntimeError("TEST_REDIS_URL is set but the server does not answer")
        return Server(env_url, "env")
    if _url_port_open(LOCAL_REDIS_URL) and redis_answers(LOCAL_REDIS_URL):
        return Server(LOCAL_REDIS_URL, "local")
    if docker_reachable():
        return _redis_container()
    if shutil.which("redis-server"):
        return start_throwaway_redis()
    raise ServerUnavailable(f"no Redis server for the tests: {REDIS_HOWTO}")


def _redis_container() -> Server:
    from testcontainers.redis import RedisContainer

    container = RedisContainer("redis:7-alpine")
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    return Server(f"redis://{host}:{port}/0", "testcontainers", _stop=container.stop)


def start_throwaway_redis(timeout: float = 20.0) -> Server:
    """redis-server on a free port with persistence off, in a temporary directory."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(f"redis-server not found: {REDIS_HOWTO}")
    base = Path(tempfile.mkdtemp(prefix="tradeplane-redis-"))
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(base), "--logfile", str(base / "server.log")]
    process = subprocess.Popen(
        args, cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"redis://127.0.0.1:{port}/0"

    def stop() -> None:
        _stop_process(process, signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)
    deadline = time.monotonic() + timeout
    while not redis_answers(url, timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            stop()
            raise ServerUnavailable("throwaway redis-server did not start")
        time.sleep(0.05)
    return Server(url, "throwaway", base, stop)


def _stop_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
