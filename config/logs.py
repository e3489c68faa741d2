"""structlog set-up: JSON lines in production (or when not on a terminal), readable otherwise.

Log fields are ids (case, command, workflow, actor), never a client's name or personal
identity number: those live only in the identity store.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(fmt: str = "auto", level: str = "info", stream=None) -> None:
    stream = stream or sys.stderr
    json_output = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


_temporal_routed = False


def route_temporal_logs() -> None:
    """Send the Temporal SDK core's own log lines to Python logging on stderr.

    By default the core writes its warnings (retries while a server restarts, say) to
    stdout, which would corrupt a command's `--json` answer. Call before the first client.
    """
    global _temporal_routed
    if _temporal_routed:
        return
    import logging

    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    core = logging.getLogger("temporalio.core")
    if not core.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        core.addHandler(handler)
        core.propagate = False
    try:
        Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=core),
        ))))
    except RuntimeError:
        pass  # a runtime exists already in this process (tests): clients keep using it
    _temporal_routed = True
