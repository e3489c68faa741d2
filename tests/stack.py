"""A real embedded stack for CLI tests: `housing-chain up` in a subprocess, on free ports,
with its data directory under a temporary folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

CLI = [sys.executable, "-m", "interfaces.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    data: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)
    backend: str = "sqlite"
    store: dict[str, str] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, data: Path, extra_env: dict[str, str] | None = None) -> Stack:
        env = dict(os.environ)
        env.update({
            "HOUSING_CHAIN_DATA": str(data),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "HOUSING_CHAIN_UI_PORT": str(free_port()),
            "HOUSING_CHAIN_API_PORT": str(free_port()),
            "HOUSING_CHAIN_LOG_FORMAT": "json",
            "COLUMNS": "200",
        })
        env.update(extra_env or {})
        return cls(data=data, env=env)

    def start(self, timeout: float = 120) -> None:
        self.process = subprocess.Popen(
            [*CLI, "up"], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.process and self.process.stdout
            for line in self.process.stdout:
                self.output.append(line)
                if "ready" in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("stack did not become ready:\n" + "".join(self.output[-30:]))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
