"""Transcript outputs: txt, jsonl, srt and vtt, each written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from xasr.decode import Transcript, Word

FORMATS = ("txt", "jsonl", "srt", "vtt")
JSONL_NAME = "transcripts.jsonl"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a hidden temporary file beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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

    txt/srt/vtt: one `<id>.<format>` per input; jsonl: one line per input in `transcripts.jsonl`,
    flushed as it goes into a `.partial` file that is renamed into place by `close()`.
    """

    def __init__(self, output_dir: Path, formats: list[str]):
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown output format(s) {', '.join(sorted(unknown))}: choose from {', '.join(FORMATS)}")
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.formats = formats
        self.jsonl_path = self.output_dir / JSONL_NAME
        self._jsonl = None
        if "jsonl" in formats:
            self._jsonl = open(self.jsonl_path.with_name(f".{JSONL_NAME}.partial"), "w", encoding="utf-8")

    def write(self, transcript: Transcript) -> None:
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(transcript.to_dict(), ensure_ascii=False) + "\n")
            self._jsonl.flush()
        if transcript.error is not None:
            return
        safe_id = transcript.id.replace("/", "_")
        for fmt, render in (("txt", lambda t: t.text + "\n"), ("srt", format_srt), ("vtt", format_vtt)):
            if fmt in self.formats:
                write_atomic(self.output_dir / f"{safe_id}.{fmt}", render(transcript))

    def close(self, complete: bool = True) -> Optional[Path]:
        """Put transcripts.jsonl in place; after an interruption (`complete=False`) the finished
        lines stay in the `.partial` file and an earlier transcripts.jsonl is left untouched."""
        if self._jsonl is None:
            return None
        self._jsonl.close()
        partial, self._jsonl = Path(self._jsonl.name), None
        if not complete:
            return partial
        os.replace(partial, self.jsonl_path)
        return self.jsonl_path
