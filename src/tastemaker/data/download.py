"""Where data lives on disk, and downloading it safely (checksum-verified, atomic).

Two folders matter:

- `data_dir()`: where you keep data sets you downloaded yourself (e.g. an unpacked ``ml-100k/``
  folder or ``ml-100k.zip``). Set ``TASTEMAKER_DATA_DIR`` to point at it; the default is
  ``~/.cache/tastemaker/data``.
- `cache_dir()`: where tastemaker downloads archives it fetches for you. Set
  ``TASTEMAKER_CACHE_DIR``; the default is ``~/.cache/tastemaker``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tastemaker.errors import ChecksumError, DataError
from tastemaker.progress import track

DATA_DIR_ENV = "TASTEMAKER_DATA_DIR"
CACHE_DIR_ENV = "TASTEMAKER_CACHE_DIR"
_CHUNK = 1 << 20


def data_dir() -> Path:
    """Folder of user-provided data sets: ``$TASTEMAKER_DATA_DIR``, else ``~/.cache/tastemaker/data``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tastemaker" / "data"


def cache_dir() -> Path:
    """Folder for downloads: ``$TASTEMAKER_CACHE_DIR``, else ``~/.cache/tastemaker``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tastemaker"


def md5sum(path: str | Path) -> str:
    """Hex md5 digest of a file, read in 1 MiB chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_md5(path: str | Path, md5: str) -> None:
    """Raise `ChecksumError` unless the file's md5 is `md5` (e.g. a zip the user supplied)."""
    actual = md5sum(path)
    if actual.lower() != md5.lower():
        raise ChecksumError(
            f"md5 mismatch: expected {md5.lower()}, got {actual}",
            path=path,
            hint="the file is incomplete, corrupted or a different release: delete it and download it again "
            "from the official site",
        )


def fetch(url: str, dest: str | Path, md5: str | None) -> Path:
    """Download `url` to the file `dest` and return `dest`.

    The body goes to a temporary file beside `dest` (progress bar over 1 MiB chunks when bars are
    on), its md5 is checked against `md5` (skipped when None: for archives without a published,
    stable checksum), and only then is it renamed onto `dest`, so `dest` is never half-written. A
    mismatch deletes the download and raises `ChecksumError`. When `dest` already exists with the
    right checksum nothing is downloaded.
    """
    dest = Path(dest)
    if dest.is_file() and (md5 is None or md5sum(dest).lower() == md5.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DataError(
                    f"could not download {url}: {exc}",
                    path=dest,
                    hint=f"check the network, or download the file yourself and put it at {dest} "
                    f"(or in ${DATA_DIR_ENV})",
                ) from exc
            with response:
                length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                total = -(-int(length) // _CHUNK) if length and length.isdigit() else None
                for block in track(_chunks(response), f"downloading {dest.name}", total=total):
                    h.update(block)
                    out.write(block)
        actual = h.hexdigest()
        if md5 is not None and actual.lower() != md5.lower():
            raise ChecksumError(
                f"md5 mismatch for the download of {url}: expected {md5.lower()}, got {actual}",
                path=dest,
                hint="the download was cut short or the file changed upstream; the bad copy was deleted, "
                "so try again, or download it yourself and check its md5",
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _chunks(stream) -> Iterator[bytes]:
    while True:
        block = stream.read(_CHUNK)
        if not block:
            return
        yield block
