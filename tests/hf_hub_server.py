"""A stand-in for the Hugging Face Hub's dataset routes on 127.0.0.1, enough for Minari's `hf://` remote (which
`minari.load_dataset(..., download=True)` uses) to find, list and download datasets; no network.

Each sub-folder of the served folder is one dataset repository `<author>/<sub-folder>`, its files the repository's
files at one fixed commit. Point huggingface_hub at it with the environment variable HF_ENDPOINT (read when
huggingface_hub is imported, so in a fresh process) and Minari with MINARI_REMOTE=hf://<author>.

Routes served (what huggingface_hub asks for): the dataset search `GET /api/datasets?author=&search=`, a repository's
info `GET /api/datasets/<repo>/revision/<rev>`, its file list `GET /api/datasets/<repo>/tree/<rev>[/<path>]`, and
its files `HEAD|GET /datasets/<repo>/resolve/<rev>/<path>` (404 with `X-Error-Code: EntryNotFound` for a missing
file, as the Hub answers).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from d4rl_server import serving

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # every repository's one commit


def write_minari_remote(store: str | os.PathLike, dataset_id: str, served: str | os.PathLike) -> Path:
    """Lay out a dataset of a local Minari store (`store`, as MINARI_DATASETS_PATH) as the Hub repository Minari's
    upload makes: repository `<first part of the id>`, with namespace_metadata.json files registering the dataset
    and its nested namespaces. Returns the repository's folder under `served`."""
    namespace, rest = dataset_id.split("/", 1)
    repo = Path(served) / namespace
    source = Path(store) / dataset_id / "data"
    for name in ("main_data.hdf5", "metadata.json"):
        target = repo / rest / "data" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((source / name).read_bytes())
    parts = dataset_id.split("/")[:-1]
    nested = ["/".join(parts[:i]) for i in range(2, len(parts) + 1)]
    (repo / "namespace_metadata.json").write_text(json.dumps({"datasets": [dataset_id], "namespaces": nested}))
    for name in nested:
        (repo / name.split("/", 1)[1] / "namespace_metadata.json").write_text("{}")
    return repo


def _files(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())


def _oid(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@contextlib.contextmanager
def serve_hf_datasets(folder: str | os.PathLike, author: str,
                      request_log: list[str] | None = None) -> Iterator[str]:
    """Serve the sub-folders of `folder` as dataset repositories `<author>/<name>` and yield the base URL (the
    value for HF_ENDPOINT); request_log, if given, gets "METHOD path" per request."""
    root = Path(folder)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            if request_log is not None:
                request_log.append(f"{self.command} {self.path}")
            url = urllib.parse.urlsplit(self.path)
            path, query = urllib.parse.unquote(url.path), urllib.parse.parse_qs(url.query)
            parts = path.strip("/").split("/")
            if path == "/api/datasets":
                wanted = query.get("author", [author])[0]
                searched = query.get("search", [""])
                repos = [p.name for p in sorted(root.iterdir()) if p.is_dir() and wanted == author
                         and all(s in p.name for s in searched)]
                return self._json([{"id": f"{author}/{name}", "_id": name, "private": False} for name in repos], body)
            if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[2] == author:
                repo = self._repo(parts[3])
                if repo is None:
                    return self._missing("RepoNotFound", body)
                if parts[4] == "revision":
                    siblings = [{"rfilename": name} for name in _files(repo)]
                    return self._json({"id": f"{author}/{repo.name}", "sha": COMMIT, "private": False,
                                       "siblings": siblings}, body)
                if parts[4] == "tree":
                    under = "/".join(parts[6:])
                    return self._json([self._entry(repo, name) for name in _files(repo)
                                       if not under or name.startswith(under + "/")], body)
            if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[1] == author and parts[3] == "resolve":
                repo = self._repo(parts[2])
                target = repo / "/".join(parts[5:]) if repo is not None else None
                if target is None or not target.is_file():
                    return self._missing("EntryNotFound", body)
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{_oid(data)}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return None
            return self._missing("NotFound", body)

        def _repo(self, name: str) -> Path | None:
            repo = root / name
            return repo if repo.is_dir() and repo.parent == root else None

        def _entry(self, repo: Path, name: str) -> dict:
            data = (repo / name).read_bytes()
            return {"type": "file", "oid": _oid(data), "size": len(data), "path": name}

        def _json(self, value, body: bool) -> None:
            data = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _missing(self, code: str, body: bool) -> None:
            data = json.dumps({"error": f"{code}: {self.path}"}).encode()
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # keep test output quiet
            pass

    with serving(Handler) as url:
        yield url
