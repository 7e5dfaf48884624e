"""A real LangGraph Server (``langgraph dev``) serving ``examples/langgraph_server/``.

`served` copies the example folder into a temporary directory and starts
``langgraph dev --no-browser --no-reload`` there, on a free loopback port, with its analytics,
version check and tracing turned off (no network) and its blocking-call detector on (no
``--allow-blocking``). It waits for ``GET /ok`` and, at the end, stops the server's whole
process group (SIGTERM, then SIGKILL). The server's log is kept in a file; `Server.log_since`
reads what it wrote during one test, which the tests attach to a failure's report.

Where ``langgraph dev`` is not installed (the ``test`` extra brings ``langgraph-cli[inmem]``
and ``langgraph-sdk``), the tests skip with the reason; ``.ci/run`` sets
``COMPACTING_SUPERVISOR_REQUIRE_SERVER=1``, which turns that into a failure. A server that is
installed but does not start is always a failure, shown with its log.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "langgraph_server"

REQUIRE_SERVER = os.environ.get("COMPACTING_SUPERVISOR_REQUIRE_SERVER", "") not in ("", "0")
"""Set by ``.ci/run``: a missing ``langgraph dev`` fails the server tests instead of skipping."""

START_TIMEOUT = 90.0
"""Seconds to wait for ``GET /ok`` (the machine may be busy; a start takes a few seconds)."""
STOP_TIMEOUT = 10.0
JOBS = 4
"""Runs the server executes at once (``langgraph dev`` runs one at a time by default)."""

QUIET_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LOG_COLOR": "false",  # a plain log to show on failure
}
"""No analytics, no version check, no tracing: the server needs no network."""
_DROPPED_ENV = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGSMITH_ENDPOINT", "OPENAI_API_KEY")


@dataclass
class Server:
    """A running ``langgraph dev``: its URL, folder, process and log file."""

    url: str
    folder: Path
    process: subprocess.Popen[bytes]
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int = 0) -> str:
        """What the server logged from byte ``offset`` on."""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def unavailable() -> str | None:
    """Why ``langgraph dev`` cannot run here, or None."""
    missing = [
        name
        for name in ("langgraph_cli", "langgraph_api", "langgraph_runtime_inmem", "langgraph_sdk")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return (
            f"LangGraph Server is not installed ({', '.join(missing)} missing): "
            'pip install "langgraph-cli[inmem]" langgraph-sdk (the `test` extra)'
        )
    if _cli() is None:
        return "the `langgraph` command is not installed next to this Python or on PATH"
    return None


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail under ``COMPACTING_SUPERVISOR_REQUIRE_SERVER=1``."""
    if REQUIRE_SERVER:
        pytest.fail(f"{reason} [COMPACTING_SUPERVISOR_REQUIRE_SERVER is set]", pytrace=False)
    pytest.skip(reason)


def _cli() -> str | None:
    """The ``langgraph`` command of this environment (the venv's first)."""
    return shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which(
        "langgraph"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    # The group: the server's own children too, even after the leader exited.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def served(
    folder: Path,
    *,
    extra_files: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Serve a copy of the example folder (plus ``extra_files``) with ``langgraph dev``.

    Args:
        folder: An empty temporary directory to serve from.
        extra_files: Files to add or replace (name to text), e.g. another ``langgraph.json``.
        env: Extra environment variables for the server.
    """
    reason = unavailable()
    if reason is not None:
        skip_or_fail(reason)
    cli = _cli()
    assert cli is not None
    app = folder / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__", ".langgraph_api"))
    for name, text in (extra_files or {}).items():
        (app / name).write_text(text)
    server_env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    server_env.update(QUIET_ENV)
    server_env.update(env or {})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "langgraph-dev.log"
    command = [
        cli,
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n-jobs-per-worker",
        str(JOBS),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=app,
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(url=url, folder=app, process=process, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ok(url):
            if process.poll() is not None:
                pytest.fail(
                    f"langgraph dev exited with code {process.returncode} before serving "
                    f"{url}:\n{server.log_since()[-6000:]}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"langgraph dev did not answer {url}/ok within {START_TIMEOUT:.0f} s:\n"
                    f"{server.log_since()[-6000:]}",
                    pytrace=False,
                )
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)
