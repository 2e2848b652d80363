"""MBROLA diphone voices, spoken through espeak-ng (Debian contrib/non-free `mbrola-*`)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Iterable, Optional

from xasr.data.tts.engines.base import EngineNotFoundError
from xasr.data.tts.engines.espeak import ESPEAK_PITCHES, ESPEAK_RATES, Espeak

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

MBROLA_VOICES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")


class Mbrola(Espeak):
    name = "mbrola"
    apt_packages = "espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1"
    install = f"apt-get install {apt_packages}"

    def draw_voice(self, rng: random.Random) -> dict:
        return dict(voice=rng.choice(MBROLA_VOICES), rate=rng.choice(ESPEAK_RATES), pitch=rng.choice(ESPEAK_PITCHES))

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice=voice, rate=175, pitch=50) for voice in MBROLA_VOICES]

    def check_missing_voice(self, utt: TtsUtterance, errors: str) -> None:
        if "mbrola voice not found" in errors.lower() or "cannot" in errors.lower():
            raise EngineNotFoundError(f"the MBROLA voice {utt.voice} not found: install it with "
                                      f"`apt-get install {self.apt_packages}` "
                                      "(Debian contrib/non-free; sudo may be needed)")
