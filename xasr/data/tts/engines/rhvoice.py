"""RHVoice: four English voices under free licences (Debian non-free `rhvoice rhvoice-english`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from xasr.data.tts.engines.base import PercentPitchEngine

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

RHVOICE_VOICES = ("alan", "bdl", "clb", "slt")  # evgeniy-eng and lyubov are CC-BY-NC-ND: left out


class RHVoice(PercentPitchEngine):
    name = "rhvoice"
    apt_packages = "rhvoice rhvoice-english"
    binary = "RHVoice-test"
    install = "apt-get install rhvoice rhvoice-english (Debian non-free)"
    voices = RHVOICE_VOICES

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        return [self.program(), "-p", utt.voice, "-r", str(round(100 / utt.rate)), "-t", str(int(utt.pitch)),
                "-o", str(wav_path)], utt.text + "\n"
