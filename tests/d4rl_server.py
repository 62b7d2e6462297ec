"""Test helpers: tiny valid D4RL-format files and a local HTTP server (with Range support) to download them from."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lom.io import write_d4rl_hdf5


def tiny_d4rl_arrays(
    n_episodes: int = 4, obs_dim: int = 17, act_dim: int = 6, seed: int = 0, max_episode_steps: int = 20
) -> dict[str, np.ndarray]:
    """Arrays of a D4RL-layout dataset: even episodes time out after max_episode_steps, odd ones terminate earlier."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")
    }
    parts["next_observations"] = []
    for episode in range(n_episodes):
        terminates = episode % 2 == 1
        steps = int(rng.integers(3, max_episode_steps)) if terminates else max_episode_steps
        states = rng.normal(size=(steps + 1, obs_dim)).astype(np.float32)
        flags = np.zeros(steps, dtype=bool)
        end = flags.copy()
        end[-1] = True
        parts["observations"].append(states[:-1])
        parts["next_observations"].append(states[1:])
        parts["actions"].append(rng.uniform(-1, 1, size=(steps, act_dim)).astype(np.float32))
        parts["rewards"].append(rng.normal(size=steps).astype(np.float32))
        parts["terminals"].append(end if terminates else flags)
        parts["timeouts"].append(flags if terminates else end)
    return {key: np.concatenate(value) for key, value in parts.items()}


def write_tiny_d4rl_file(
    path: str | os.PathLike,
    n_episodes: int = 4,
    obs_dim: int = 17,
    act_dim: int = 6,
    seed: int = 0,
    max_episode_steps: int = 20,
    metadata: dict | None = None,
) -> Path:
    """Write a small valid D4RL-format HDF5 file (with terminals, timeouts and next_observations) at `path`."""
    arrays = tiny_d4rl_arrays(n_episodes, obs_dim, act_dim, seed, max_episode_steps)
    write_d4rl_hdf5(path, arrays, metadata)
    return Path(path)


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free port of 127.0.0.1 in a thread; yield the base URL, stop when the context ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_directory(
    directory: str | os.PathLike,
    cut_responses: int = 0,
    honour_range: bool = True,
    request_log: list[dict] | None = None,
) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 and yield its base URL; the server stops when the context ends.

    cut_responses: that many first file responses send half their body and then drop the connection.
    honour_range: False makes the server answer Range requests with the whole file (200), like some servers do.
    request_log: if given, gets one {"path", "range", "status"} dict per request.
    """
    state = {"cuts_left": cut_responses}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            target = Path(directory) / self.path.lstrip("/")
            if not target.is_file():
                self._log(404)
                self.send_error(404)
                return
            data = target.read_bytes()
            start, stop, status = self._byte_range(len(data))
            self._log(status)
            if status == 416:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:stop]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes" if honour_range else "none")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            self.end_headers()
            with lock:
                cut = state["cuts_left"] > 0
                state["cuts_left"] -= cut
            self.wfile.write(body[: len(body) // 2] if cut else body)
            self.wfile.flush()
            self.close_connection = True

        def _byte_range(self, size: int) -> tuple[int, int, int]:
            """(start, stop, status) for the request's `Range: bytes=a-` or `bytes=a-b` header."""
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if not (honour_range and match):
                return 0, size, 200
            start = int(match.group(1))
            stop = min(int(match.group(2)) + 1, size) if match.group(2) else size
            return (start, stop, 206) if start < stop else (0, 0, 416)

        def _log(self, status: int) -> None:
            if request_log is not None:
                request_log.append({"path": self.path, "range": self.headers.get("Range"), "status": status})

        def log_message(self, format: str, *args) -> None:  # keep test output quiet
            pass

    with serving(Handler) as url:
        yield url


def unreachable_base_url() -> str:
    """A base URL on a local port nothing listens on: requests to it fail at once, like having no network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
