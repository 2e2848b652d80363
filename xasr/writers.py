"""Transcript outputs: txt, jsonl, srt and vtt, each written atomically."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Optional

from xasr.transcript import Transcript, Word
from xasr.io import read_lines, write_atomic

FORMATS = ("txt", "jsonl", "srt", "vtt")
JSONL_NAME = "transcripts.jsonl"
LOCK_NAME = ".xasr-decode.lock"
SPOOL_DIR = ".xasr-shards"  # where the other ranks of a torchrun decode leave their transcripts for rank 0
SETTINGS_NAME = ".xasr-decode.json"  # the model and options the folder's transcripts were made with


class OtherSettings(ValueError):
    """The output folder holds transcripts made by another model or with other options."""


class OutputLocked(RuntimeError):
    """Another xasr decode is writing into the same output folder."""


def _clock(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def cues(transcript: Transcript, max_chars: int = 84, max_seconds: float = 7.0,
         max_gap: float = 1.0) -> list[tuple[float, float, str]]:
    """Subtitle cues: words grouped until a pause, a length or a duration limit; segments otherwise."""
    words = transcript.words
    if not words:
        return [(s.start, s.end, s.text) for s in transcript.segments if s.text]
    groups: list[list[Word]] = [[words[0]]]
    for word in words[1:]:
        group = groups[-1]
        text_length = sum(len(w.word) + 1 for w in group) + len(word.word)
        if (word.start - group[-1].end > max_gap or text_length > max_chars
                or word.end - group[0].start > max_seconds):
            groups.append([word])
        else:
            group.append(word)
    return [(g[0].start, max(g[-1].end, g[0].start + 0.2), " ".join(w.word for w in g)) for g in groups]


def format_srt(transcript: Transcript) -> str:
    blocks = [f"{n}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{text}\n"
              for n, (a, b, text) in enumerate(cues(transcript), 1)]
    return "\n".join(blocks)


def format_vtt(transcript: Transcript) -> str:
    blocks = [f"{_clock(a, '.')} --> {_clock(b, '.')}\n{text}\n" for a, b, text in cues(transcript)]
    return "WEBVTT\n\n" + "\n".join(blocks)


class TranscriptWriter:
    """Writes each finished transcript in the chosen formats under `output_dir`.

    txt/srt/vtt: one `<id>.<format>` per input; jsonl: one line per input, appended and flushed to
    `.transcripts.jsonl.partial` as each input finishes, then put in input order into
    `transcripts.jsonl` by `close()`. One writer per folder: a second one raises OutputLocked.
    `done` holds the ids an earlier run already transcribed into this folder (its transcripts.jsonl
    or an interrupted run's .partial), which a resuming caller skips; `overwrite` forgets them.
    `settings` (the model and the options that shape the text) are kept in `.xasr-decode.json`;
    resuming a folder made with other settings raises OtherSettings.
    """

    def __init__(self, output_dir: Path, formats: list[str], overwrite: bool = False,
                 settings: Optional[dict] = None):
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown output format(s) {', '.join(sorted(unknown))}: choose from {', '.join(FORMATS)}")
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.formats = formats
        self.jsonl_path = self.output_dir / JSONL_NAME
        self.partial_path = self.output_dir / f".{JSONL_NAME}.partial"
        self._lock = _lock(self.output_dir / LOCK_NAME)
        self.previous: dict[str, str] = {}  # id -> JSON line, from earlier runs into this folder
        if not overwrite:
            for path in (self.jsonl_path, self.partial_path):
                if path.is_file():
                    for _, line in read_lines(path):
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError:  # a line cut short by a killed run
                            continue
                        if "error" not in record:
                            self.previous[record["id"]] = line
        self.done = set(self.previous)
        self._lines: dict[str, str] = {}
        self._jsonl = None
        if settings is not None:
            self._check_settings(settings)
        if "jsonl" in formats:
            # the finished lines of earlier runs first (replaced atomically, so a kill loses none)
            write_atomic(self.partial_path, "".join(line + "\n" for line in self.previous.values()))
            self._jsonl = open(self.partial_path, "a", encoding="utf-8")

    def _check_settings(self, settings: dict) -> None:
        """Refuse to add to transcripts of another model or other options (a resumed folder would mix
        them and be scored as one); remember these settings otherwise."""
        path = self.output_dir / SETTINGS_NAME
        if self.previous and path.is_file():
            try:
                before = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                before = None
            keys = sorted((set(before) | set(settings)) - {"model_name"}) if isinstance(before, dict) else []
            changed = [f"{key}: {before.get(key)} -> {settings.get(key)}" for key in keys
                       if before.get(key) != settings.get(key)]
            if changed:
                changed = [f"model: {before.get('model_name')} -> {settings.get('model_name')}"
                           if c.startswith("model_fingerprint:") else c for c in changed]
                self.close(complete=False)
                raise OtherSettings(f"{self.output_dir} holds {len(self.previous)} transcript(s) made with other "
                                    f"settings ({'; '.join(changed)}); decode into a new --output-dir, or pass "
                                    "--overwrite to decode everything again")
        write_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")

    def write(self, transcript: Transcript) -> list[str]:
        """Write one transcript; returns one line per output that could not be written."""
        problems = []
        if self._jsonl is not None:
            line = json.dumps(transcript.to_dict(), ensure_ascii=False)
            self._lines[transcript.id] = line
            self._jsonl.write(line + "\n")
            self._jsonl.flush()
        if transcript.error is not None:
            return problems
        safe_id = transcript.id.replace("/", "_")
        for fmt, render in (("txt", lambda t: t.text + "\n"), ("srt", format_srt), ("vtt", format_vtt)):
            if fmt in self.formats:
                path = self.output_dir / f"{safe_id}.{fmt}"
                try:
                    write_atomic(path, render(transcript))
                except OSError as e:
                    problems.append(f"{path}: cannot be written ({e.strerror or e})")
        return problems

    def close(self, complete: bool = True, order: Optional[list[str]] = None) -> Optional[Path]:
        """Put transcripts.jsonl in place, earlier runs' lines and this run's in `order` (input ids).

        After an interruption (`complete=False`) the finished lines stay in the `.partial` file
        (a re-run continues from them) and an earlier transcripts.jsonl is left untouched."""
        try:
            if self._jsonl is None:
                return None
            self._jsonl.close()
            self._jsonl = None
            if not complete:
                return self.partial_path
            lines = {**self.previous, **self._lines}
            ids = [i for i in (order or []) if i in lines] + [i for i in lines if i not in set(order or [])]
            write_atomic(self.jsonl_path, "".join(lines[i] + "\n" for i in ids))
            self.partial_path.unlink(missing_ok=True)
            return self.jsonl_path
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None


def _lock(path: Path):
    """An exclusive lock on `path` held for the writer's life; OutputLocked names its holder."""
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OutputLocked(f"{path.parent} is being written by {holder}; wait for it to finish or "
                           "choose another --output-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"xasr decode (pid {os.getpid()})\n")
    handle.flush()
    return handle
