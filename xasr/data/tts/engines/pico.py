"""SVOX Pico (pico2wave): US and British English (Debian non-free `libttspico-utils`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from xasr.data.tts.engines.base import PercentPitchEngine

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

PICO_VOICES = ("en-US", "en-GB")


class Pico(PercentPitchEngine):
    name = "pico"
    apt_packages = "libttspico-utils"
    binary = "pico2wave"
    install = "apt-get install libttspico-utils (Debian non-free)"
    voices = PICO_VOICES

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        # pico reads XML entities out letter by letter: no markup characters inside its tags
        text = utt.text.replace("&", " and ").replace("<", " ").replace(">", " ")
        markup = f"<speed level='{round(100 / utt.rate)}'><pitch level='{int(utt.pitch)}'>{text}</pitch></speed>"
        return [self.program(), "-l", utt.voice, "-w", str(wav_path), markup], None
