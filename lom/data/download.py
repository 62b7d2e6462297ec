"""Fetch D4RL files into d4rl's own cache: streamed, resumable, verified before they are used."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from lom.data.d4rl_file import check_d4rl_layout
from lom.data.types import DatasetSpec
from lom.errors import LOMError

CACHE_DIR_ENV = "D4RL_DATASET_DIR"
MIRROR_ENV = "LOM_DATASET_MIRROR"
DEFAULT_CACHE_DIR = "~/.d4rl/datasets"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
# Resuming continues while each attempt adds bytes; this only bounds a server that keeps cutting off.
MAX_ATTEMPTS = 50


class _FetchFailed(Exception):
    """A download attempt that cannot go on; the message is one line for the user."""


class _Incomplete(OSError):
    """The server closed the connection before sending the whole body."""


def dataset_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def cached_dataset_path(spec: DatasetSpec) -> Path:
    return dataset_cache_dir() / _file_name(_url_of(spec))


def download_url(spec: DatasetSpec) -> str:
    """The spec's URL, or `$LOM_DATASET_MIRROR/<file name>` when a mirror is set."""
    url = _url_of(spec)
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{_file_name(url)}" if mirror else url


def ensure_dataset_file(spec: DatasetSpec, progress: bool = True) -> Path:
    """Path of a verified local copy of the spec's file, downloading (or repairing) it first if needed."""
    path = cached_dataset_path(spec)
    if path.exists() and _problem(path) is None:
        return path
    url = download_url(spec)
    with _exclusive(path):
        # Another process may have fetched it while this one waited for the lock.
        problem = _problem(path) if path.exists() else None
        if path.exists() and problem is None:
            return path
        if problem is not None:
            warnings.warn(f"cached dataset {path} is unusable ({problem}); fetching it again from {url}", stacklevel=2)
            path.unlink()
        try:
            _download(url, path, progress)
        except _FetchFailed as e:
            if problem is not None:
                raise LOMError(
                    f"cached dataset {path} was truncated or corrupt and fetching it again from {url} failed ({e}) — "
                    f"put a good copy of the file at {path}"
                ) from None
            raise LOMError(
                f"cannot download {spec.name} from {url} ({e}) — without network access, fetch that file elsewhere "
                f"and put it at {path}"
            ) from None
    return path


def _url_of(spec: DatasetSpec) -> str:
    if not spec.url:
        raise ValueError(f"dataset spec {spec.name} has no URL to download from")
    return spec.url


def _file_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]


def _problem(path: Path) -> str | None:
    try:
        check_d4rl_layout(path)
    except LOMError as e:
        return str(e)
    return None


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Serialise downloads of one file across processes (e.g. several seeds started together), through
    `<file>.lock`, which the holder deletes when done so that the cache keeps only dataset files."""
    lock = path.with_name(path.name + ".lock")
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "w")
        except OSError as e:
            raise LOMError(
                f"cannot write to the dataset cache {path.parent} ({e.strerror}) — set {CACHE_DIR_ENV} to a folder "
                "you can write to"
            ) from None
        fcntl.flock(handle, fcntl.LOCK_EX)
        # A holder deletes the file before it lets go: a waiter that then gets the lock holds a deleted file and
        # must lock the path anew, or two processes would each hold "the" lock.
        try:
            current = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def _download(url: str, path: Path, progress: bool) -> None:
    """Fetch into `<file>.part`, verify, then rename onto `path`; a corrupt resumed file is fetched from scratch."""
    part = path.with_name(path.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    _fetch_with_resume(url, part, progress)
    problem = _problem(part)
    if problem is not None and resumed:
        part.unlink()
        _fetch_with_resume(url, part, progress)
        problem = _problem(part)
    if problem is not None:
        part.unlink()
        raise _FetchFailed(f"the downloaded file is not a valid D4RL dataset: {problem}")
    os.replace(part, path)


def _fetch_with_resume(url: str, part: Path, progress: bool) -> None:
    for _ in range(MAX_ATTEMPTS):
        size_before = _size(part)
        try:
            _fetch_once(url, part, progress)
            return
        except (OSError, http.client.HTTPException) as e:
            if _size(part) <= size_before:
                raise _FetchFailed(_one_line(e)) from None
    raise _FetchFailed(f"the server cut the download off {MAX_ATTEMPTS} times")


def _fetch_once(url: str, part: Path, progress: bool) -> None:
    """One HTTP request: resume `part` with a Range request, or start over when the server ignores it."""
    offset = _size(part)
    headers = {"User-Agent": "lom-data"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return  # nothing past what we hold: verification decides whether it is whole
        raise
    with response:
        if response.status == 206:
            _check_range_start(response, offset)
        else:
            offset = 0  # a plain 200 carries the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and _size(part) < total:
        raise _Incomplete(f"connection closed after {_size(part)} of {total} bytes")


def _check_range_start(response, offset: int) -> None:
    content_range = response.headers.get("Content-Range", "")
    if not content_range.startswith(f"bytes {offset}-"):
        raise _FetchFailed(f"the server answered a request for bytes {offset}- with range '{content_range}'")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
