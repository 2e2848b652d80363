"""SVOX Pico (pico2wave): US and British English (Debian non-free `libttspico-utils`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from xasr.data.tts.engines.base import DURATION_SCALES, PERCENT_PITCHES, CommandEngine

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

PICO_VOICES = ("en-US", "en-GB")


class Pico(CommandEngine):
    name = "pico"
    apt_packages = "libttspico-utils"
    binary = "pico2wave"
    install = "apt-get install libttspico-utils (Debian non-free)"

    def draw_voice(self, rng: random.Random) -> dict:
        return dict(voice=rng.choice(PICO_VOICES), rate=rng.choice(DURATION_SCALES),
                    pitch=rng.choice(PERCENT_PITCHES))

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice=voice, rate=1.0, pitch=100) for voice in PICO_VOICES]

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        # pico reads XML entities out letter by letter: no markup characters inside its tags
        text = utt.text.replace("&", " and ").replace("<", " ").replace(">", " ")
        markup = f"<speed level='{round(100 / utt.rate)}'><pitch level='{int(utt.pitch)}'>{text}</pitch></speed>"
        return [self.program(), "-l", utt.voice, "-w", str(wav_path), markup], None
