"""The TTS engines, by name, in the order a plan assigns them. A new engine is one module here with
an `Engine` subclass, added to `ENGINE_CLASSES`."""

from xasr.data.tts.engines.base import Engine, EngineNotFoundError
from xasr.data.tts.engines.espeak import Espeak
from xasr.data.tts.engines.festival import Festival
from xasr.data.tts.engines.flite import Flite
from xasr.data.tts.engines.mbrola import Mbrola
from xasr.data.tts.engines.pico import Pico
from xasr.data.tts.engines.piper import Piper
from xasr.data.tts.engines.rhvoice import RHVoice

ENGINE_CLASSES = (Piper, Espeak, Flite, Festival, RHVoice, Pico, Mbrola)
_ENGINES = {cls.name: cls() for cls in ENGINE_CLASSES}
ENGINES = tuple(_ENGINES)


def engine_named(name: str) -> Engine:
    """The engine called `name`; ValueError naming the known ones otherwise."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown TTS engine(s) ['{name}']; choose from {', '.join(ENGINES)}") from None


__all__ = ["ENGINES", "ENGINE_CLASSES", "Engine", "EngineNotFoundError", "engine_named"]
