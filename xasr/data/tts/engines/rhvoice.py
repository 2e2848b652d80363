"""RHVoice: four English voices under free licences (Debian non-free `rhvoice rhvoice-english`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from xasr.data.tts.engines.base import DURATION_SCALES, PERCENT_PITCHES, CommandEngine

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

RHVOICE_VOICES = ("alan", "bdl", "clb", "slt")  # evgeniy-eng and lyubov are CC-BY-NC-ND: left out


class RHVoice(CommandEngine):
    name = "rhvoice"
    apt_packages = "rhvoice rhvoice-english"
    binary = "RHVoice-test"
    install = "apt-get install rhvoice rhvoice-english (Debian non-free)"

    def draw_voice(self, rng: random.Random) -> dict:
        return dict(voice=rng.choice(RHVOICE_VOICES), rate=rng.choice(DURATION_SCALES),
                    pitch=rng.choice(PERCENT_PITCHES))

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice=voice, rate=1.0, pitch=100) for voice in RHVOICE_VOICES]

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        return [self.program(), "-p", utt.voice, "-r", str(round(100 / utt.rate)), "-t", str(int(utt.pitch)),
                "-o", str(wav_path)], utt.text + "\n"
