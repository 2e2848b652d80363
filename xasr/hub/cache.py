"""The conversion cache: converted weights under $XASR_CACHE (default ~/.cache/xasr)/<name>/,
stamped with what they were converted from and rebuilt when that changes."""


from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from xasr.hub.sources import KNOWN_SOURCES, ResolvedSource

log = logging.getLogger(__name__)


STAMP_FILE = "xasr_source.json"  # in a cache dir: what it was converted from


CACHE_FORMAT = 2  # bump when the conversion changes, so old caches are rebuilt


def cache_root() -> Path:
    return Path(os.environ.get("XASR_CACHE") or Path.home() / ".cache" / "xasr").expanduser()


def _cache_dir(resolved: ResolvedSource) -> Path:
    if resolved.name in KNOWN_SOURCES:
        return cache_root() / resolved.name
    # a local dir or file: its name plus a hash of where it is
    label = resolved.files[0].stem if resolved.kind in ("gguf", "onnx") else resolved.files[0].parent.name
    key = hashlib.sha1(str(resolved.files[0].resolve()).encode()).hexdigest()[:10]
    return cache_root() / f"{label or 'model'}-{key}"


def _fingerprint(resolved: ResolvedSource) -> dict:
    files = []
    for path in resolved.files:
        stat = path.stat()
        files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return {"format": CACHE_FORMAT, "kind": resolved.kind, "files": files}


def _read_stamp(directory: Path) -> Optional[dict]:
    try:
        return json.loads((directory / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def _cached(resolved: ResolvedSource, build: Callable[[Path], None]) -> Path:
    """The cache dir for `resolved`, built by `build(tmp_dir)` unless it is up to date.

    Built in a temp dir and renamed into place, so an interrupted conversion leaves nothing behind
    and processes converting at once (e.g. torchrun ranks) never see a half-written dir.
    """
    target = _cache_dir(resolved)
    stamp = _fingerprint(resolved)
    if _read_stamp(target) == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to Hugging Face format in %s (once)", resolved.name, target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        build(tmp)
        (tmp / STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n")
        if _read_stamp(target) == stamp:  # another process finished first
            shutil.rmtree(tmp)
            return target
        if target.exists():  # stale: the packaged files changed
            stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.stale-"))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if _read_stamp(target) != stamp:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
