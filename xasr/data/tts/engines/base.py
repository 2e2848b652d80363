"""What every TTS engine is: how it draws a voice, names it, checks it is installed, and speaks."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

# Rate grids shared by engines: a duration scale (> 1 is slower) and target mean F0s in Hz.
DURATION_SCALES = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)
MALE_F0 = tuple(range(85, 131, 5))
FEMALE_F0 = tuple(range(150, 211, 10))
PERCENT_PITCHES = tuple(range(80, 121, 5))  # RHVoice and Pico: percent of the voice's own pitch
TIMEOUT = 300  # seconds one external synthesis may take


class EngineNotFoundError(RuntimeError):
    """A requested TTS engine (or one of its voices) is not installed; the message says what to install."""


class Engine:
    """One offline TTS engine. Subclasses set the class attributes and `draw_voice`, `probe_voices`
    and `synthesize`; the speaker id is `engine:voice:<rate_label><rate>[:<pitch_label><pitch>]`."""

    name: str = ""
    apt_packages: str = ""  # the Debian packages a recipe installs for it
    binary: Optional[str] = None  # the program it runs, shown by `xasr info`
    rate_label: str = "d"  # d: duration scale, s: words per minute, ls: piper's length scale
    pitch_label: str = "f"

    def draw_voice(self, rng: random.Random) -> dict:
        """Voice, rate and pitch (and engine-specific settings) for one utterance."""
        raise NotImplementedError

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        """Settings of the voices `check_engines` asks to say a test word. An engine whose voices
        are separate packages (festival) probes only `voices`, the ones a plan uses."""
        raise NotImplementedError

    def load(self) -> None:
        """Load what the engine needs once per process, so that it is not counted as synthesis time."""

    def synthesize(self, utt: TtsUtterance) -> tuple[np.ndarray, int]:
        """(mono float32 samples, their sampling rate)."""
        raise NotImplementedError

    def speaker(self, utt: TtsUtterance) -> str:
        pitch = "" if utt.pitch is None else f":{self.pitch_label}{utt.pitch:g}"
        return f"{self.name}:{utt.voice}:{self.rate_label}{utt.rate:g}{pitch}"

    def custom(self, utt: TtsUtterance) -> dict:
        """What a supervision records of the voice, for filtering corpora later."""
        return {"sentence_id": utt.sentence_id, "engine": utt.engine, "voice": utt.voice,
                "rate": utt.rate, "pitch": utt.pitch}


class CommandEngine(Engine):
    """An engine that is a program writing a wav file; subclasses build its command line."""

    install: str = ""  # how to install the program, named when it is missing
    error_markers: tuple[str, ...] = ()  # stderr text that means failure even with exit status 0

    def command(self, utt: TtsUtterance, text_path: Path, wav_path: Path) -> tuple[list[str], Optional[str]]:
        """(argv, stdin text or None)."""
        raise NotImplementedError

    def check_missing_voice(self, utt: TtsUtterance, errors: str) -> None:
        """Raise EngineNotFoundError when `errors` says the voice is not installed."""

    def program(self) -> str:
        return find_binary(self.binary, self.install)

    def synthesize(self, utt: TtsUtterance) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="xasr-tts-") as tmp:
            text_path, wav_path = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
            text_path.write_text(utt.text + "\n", encoding="utf-8")
            command, stdin = self.command(utt, text_path, wav_path)
            result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, input=stdin)
            errors = " ".join(result.stderr.split())[:300]
            self.check_missing_voice(utt, errors)
            if result.returncode != 0 or any(m in errors for m in self.error_markers) or not wav_path.is_file():
                name = Path(command[0]).name
                raise RuntimeError(f"{name} exited with {result.returncode}: {errors or 'no output'}")
            audio, rate = sf.read(str(wav_path), dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate


class PercentPitchEngine(CommandEngine):
    """A program whose voices take a duration scale and a pitch in percent of the voice's own."""

    voices: tuple[str, ...] = ()

    def draw_voice(self, rng: random.Random) -> dict:
        return dict(voice=rng.choice(self.voices), rate=rng.choice(DURATION_SCALES), pitch=rng.choice(PERCENT_PITCHES))

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        return [dict(voice=voice, rate=1.0, pitch=100) for voice in self.voices]


def draw_voice_and_f0(voices: dict, rng: random.Random) -> dict:
    """A voice, a duration scale and (where the voice takes one) a target F0 from its grid."""
    voice = rng.choice(sorted(voices))
    rate = rng.choice(DURATION_SCALES)
    return dict(voice=voice, rate=rate, pitch=rng.choice(voices[voice]) if voices[voice] else None)


def find_binary(binary: str, install: str, name: Optional[str] = None) -> str:
    path = shutil.which(binary)
    if path is None:
        raise EngineNotFoundError(f"{name or binary} not found: install it with `{install}` (sudo may be needed)")
    return path
