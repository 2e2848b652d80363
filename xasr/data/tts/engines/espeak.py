"""espeak-ng: formant voices of several English accents, each with its variants (Debian `espeak-ng`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from xasr.data.tts.engines.base import CommandEngine

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

ESPEAK_RATES = tuple(range(140, 201, 10))  # words per minute
ESPEAK_PITCHES = tuple(range(30, 71, 5))  # espeak's own 0-99 scale, 50 is the voice's default
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3")


class Espeak(CommandEngine):
    name = "espeak"
    apt_packages = "espeak-ng"
    binary = "espeak-ng"
    install = "apt-get install espeak-ng"
    rate_label, pitch_label = "s", "p"

    def draw_voice(self, rng: random.Random) -> dict:
        variant = rng.choice(ESPEAK_VARIANTS)
        voice = rng.choice(ESPEAK_VOICES) + (f"+{variant}" if variant else "")
        return dict(voice=voice, rate=rng.choice(ESPEAK_RATES), pitch=rng.choice(ESPEAK_PITCHES))

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice="en-us", rate=175, pitch=50)]

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        return [self.program(), "-v", utt.voice, "-s", str(int(utt.rate)), "-p", str(int(utt.pitch)),
                "-w", str(wav_path), "-f", str(text_path)], None
