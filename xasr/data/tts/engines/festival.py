"""Festival (text2wave): two diphone voices and the HTS slt voice (Debian `festival festvox-*`)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from xasr.data.tts.engines.base import (FEMALE_F0, MALE_F0, CommandEngine, EngineNotFoundError, draw_voice_and_f0,
                                        find_binary)

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

# voice -> (Debian package, F0 grid)
FESTIVAL_VOICES = {
    "kal_diphone": ("festvox-kallpc16k", MALE_F0),
    "ked_diphone": ("festvox-kdlpc16k", MALE_F0),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", FEMALE_F0),
}
SLT_HTS_F0 = 170.0  # measured mean F0 of the HTS slt voice; hts_engine shifts pitch in half tones


class Festival(CommandEngine):
    name = "festival"
    binary = "text2wave"
    error_markers = ("SIOD ERROR",)  # text2wave exits 0 even after a Scheme error

    @property
    def apt_packages(self) -> str:
        return "festival " + " ".join(package for package, _ in FESTIVAL_VOICES.values())

    @property
    def install(self) -> str:
        return f"apt-get install {self.apt_packages}"

    def draw_voice(self, rng: random.Random) -> dict:
        return draw_voice_and_f0({voice: f0 for voice, (_, f0) in FESTIVAL_VOICES.items()}, rng)

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice=voice, rate=1.0, pitch=None) for voice in sorted(set(voices or FESTIVAL_VOICES))]

    def program(self) -> str:
        return find_binary(self.binary, self.install, "festival (text2wave)")

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        settings = [arg for expr in self.settings(utt) for arg in ("-eval", expr)]
        return [self.program(), "-o", str(wav_path), *settings, str(text_path)], None

    def check_missing_voice(self, utt: TtsUtterance, errors: str) -> None:
        if f"unbound variable : voice_{utt.voice}" in errors:
            raise EngineNotFoundError(f"festival voice {utt.voice} not found: install it with "
                                      f"`apt-get install {FESTIVAL_VOICES[utt.voice][0]}` (sudo may be needed)")

    @staticmethod
    def settings(utt: TtsUtterance) -> list[str]:
        """Scheme expressions that choose the voice and set its rate and pitch."""
        settings = [f"(voice_{utt.voice})"]
        if utt.voice.endswith("_hts"):  # HTS ignores Duration_Stretch and int_lr_params
            options = f'(list "-r" {1 / utt.rate:.4f})'
            if utt.pitch is not None:
                options += f' (list "-fm" {12 * math.log2(utt.pitch / SLT_HTS_F0):.3f})'
            settings.append(f"(set! hts_engine_params (append hts_engine_params (list {options})))")
        else:
            settings.append(f"(Parameter.set 'Duration_Stretch {utt.rate})")
            if utt.pitch is not None:  # an entry in front shadows the voice's own target_f0_mean
                settings.append(f"(set! int_lr_params (cons (list 'target_f0_mean {utt.pitch}) int_lr_params))")
        return settings
