"""What decoding gives back: a `Transcript` per input, made of `Segment`s of timed `Word`s.

Plain dataclasses without torch, so the writers (and any tool reading transcripts.jsonl) need none.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: Optional[float] = None  # mean probability of its tokens (None: the search gave none)


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    id: str
    text: str = ""
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio
    decode_seconds: float = 0.0  # this input's share of the decoding wall time
    error: Optional[str] = None  # one line naming the input and the problem
    notice: Optional[str] = None  # e.g. no speech found (not an error)
    path: Optional[str] = None

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict:
        data = {"id": self.id, "text": self.text,
                "words": [dataclasses.asdict(w) for w in self.words],
                "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in self.segments],
                "duration": round(self.duration, 3),
                "timing": {"decode_seconds": round(self.decode_seconds, 3),
                           "rtf": round(self.decode_seconds / self.duration, 4) if self.duration else None}}
        if self.path is not None:
            data["path"] = self.path
        if self.error is not None:
            data["error"] = self.error
        return data
