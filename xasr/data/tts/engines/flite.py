"""CMU flite: four English voices (Debian `flite`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from xasr.data.tts.engines.base import FEMALE_F0, MALE_F0, CommandEngine, draw_voice_and_f0

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

# flite's kal is kal16 at 8 kHz and awb_time only knows clock times, so both are left out.
FLITE_VOICES = {"kal16": MALE_F0, "awb": MALE_F0, "rms": None, "slt": FEMALE_F0}  # rms ignores F0


class Flite(CommandEngine):
    name = "flite"
    apt_packages = "flite"
    binary = "flite"
    install = "apt-get install flite"

    def draw_voice(self, rng: random.Random) -> dict:
        return draw_voice_and_f0(FLITE_VOICES, rng)

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice="slt", rate=1.0, pitch=None)]

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        command = [self.program(), "-voice", utt.voice, "--setf", f"duration_stretch={utt.rate}"]
        if utt.pitch is not None:
            command += ["--setf", f"int_f0_target_mean={utt.pitch}"]
        return command + ["-f", str(text_path), "-o", str(wav_path)], None
