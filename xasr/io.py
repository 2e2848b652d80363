"""Files in and out: atomic writes (`atomic_path`, `write_atomic`, `atomic_folder`), and text readers that name the
file and line of a problem.

Every text input (transcripts.tsv, wav.scp, Kaldi text, JSON lines, gzipped or not) is read with
`read_lines`, which drops a UTF-8 byte-order mark and turns undecodable bytes into one clear error.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Iterator, Union

Pathlike = Union[str, Path]


@contextlib.contextmanager
def atomic_path(path: Pathlike, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends without
    an error, removed when it raises, so a reader never sees half a file.

    The name is short, hidden and unique whatever the target's name (`.xasr-XXXX<suffix>`), so two
    writers never share one and a long file name cannot make it too long. `suffix` keeps an
    extension a writer reads the format from (`.jsonl.gz`, `.wav`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".xasr-", suffix=suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the file gets the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(path: Pathlike) -> Iterator[Path]:
    """A temporary folder beside `path` to fill; it replaces `path` (and whatever was there) when the
    block ends without an error, and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def short_error(error: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, at most `limit` characters: what one-line reports quote."""
    return " ".join(str(error).split())[:limit]


def write_atomic(path: Pathlike, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) to `path` atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def read_lines(path: Pathlike) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) of a UTF-8 text file, gzipped or not.

    A byte-order mark is dropped; bytes that are not UTF-8, or a truncated gzip stream, raise
    ValueError naming the file and the line.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    if path.name.endswith(".gz") and not gzipped and path.stat().st_size > 0:
        raise ValueError(f"{path}: cannot be read (named .gz but not gzip-compressed)")
    opener = gzip.open if gzipped else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, data in enumerate(f, 1):
                try:
                    line = data.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    byte = data[e.start:e.start + 1]
                    raise ValueError(f"{path}:{number}: not UTF-8 text (byte {e.start}: {byte!r})") from None
                yield number, line.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path}: the gzip stream is truncated or corrupt after {number} line(s) ({e})") from None
