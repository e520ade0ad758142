"""Resumable HTTP(S) downloads with progress and SHA-256 verification.

Bytes go to ``<dest>.part``; an interrupted download resumes with an HTTP ``Range``
request (or restarts cleanly when the server ignores it). The finished file is renamed
into place only if its SHA-256 matches; otherwise it is deleted and the download refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from voxmmsd.errors import ModelError
from voxmmsd.models.integrity import CHUNK, sha256_file

log = logging.getLogger(__name__)

#: progress(bytes_done, bytes_total or None)
ProgressFn = Callable[[int, Optional[int]], None]


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _open(url: str, start: int, timeout: float):  # -> http.client.HTTPResponse
    req = urllib.request.Request(url, headers={"User-Agent": "voxmmsd"})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _total_from(resp, start: int) -> Optional[int]:
    rng = resp.headers.get("Content-Range")
    if rng and "/" in rng and not rng.endswith("/*"):
        return int(rng.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return int(length) + (start if getattr(resp, "status", 200) == 206 else 0) if length else None


def download(url: str, dest: Path, sha256: str, size: Optional[int] = None,
             progress: Optional[ProgressFn] = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``; resume a ``.part`` left by an earlier attempt; verify ``sha256``.

    Raises :class:`ModelError` on network errors (the ``.part`` stays, to resume) and on a
    checksum mismatch (the bytes are deleted; nothing is installed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part(dest)
    sha256 = sha256.lower()
    if dest.exists() and sha256_file(dest) == sha256:
        return dest
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        part.unlink()
        start = 0
    try:
        if size is not None and start == size:
            log.info("download of %s already complete; verifying", url)
        else:
            _fetch(url, part, start, size, progress, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start > 0:  # range beyond the end: our part is complete or stale
            log.info("server says %s is complete; verifying", part)
        else:
            raise ModelError(f"Download of {url} failed: HTTP {exc.code} {exc.reason}. Check the URL or try "
                             f"again later.") from None
    except (urllib.error.URLError, OSError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(f"Download of {url} was interrupted ({reason}). Run the same command again to resume "
                         f"({part.stat().st_size if part.exists() else 0} bytes kept in {part}).") from None
    actual = sha256_file(part)
    if actual != sha256:
        part.unlink()
        raise ModelError(f"Download of {url} refused: its SHA-256 is {actual}, the catalog expects {sha256}. "
                         f"The file was damaged or altered; it has been deleted and nothing was installed.")
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, start: int, size: Optional[int], progress: Optional[ProgressFn],
           timeout: float) -> None:
    with _open(url, start, timeout) as resp:
        status = getattr(resp, "status", 200)
        if start > 0 and status != 206:
            log.info("server ignored the range request for %s; restarting the download", url)
            start = 0
        total = _total_from(resp, start) or size
        mode = "ab" if start > 0 else "wb"
        done = start
        with open(part, mode) as f:
            if progress:
                progress(done, total)
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
            f.flush()
            os.fsync(f.fileno())
        if total is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
