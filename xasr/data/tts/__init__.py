"""A synthetic corpus: sentences spoken by offline TTS engines (piper, espeak-ng, flite, festival,
RHVoice, SVOX Pico, MBROLA).

`plan` draws which sentence, engine, voice, rate and pitch every utterance gets; `engines/` holds one
class per engine (a new engine is one new module there); `runner` synthesizes a plan into audio and
lhotse manifests, resuming where an earlier run stopped.
"""

from xasr.data.tts.engines import ENGINES, Engine, EngineNotFoundError
from xasr.data.tts.plan import TtsUtterance, plan_utterances, read_sentences
from xasr.data.tts.runner import EngineStats, TtsSplit, TtsStats, check_engines, prepare_tts, synthesize

__all__ = ["ENGINES", "Engine", "EngineNotFoundError", "EngineStats", "TtsSplit", "TtsStats", "TtsUtterance",
           "check_engines", "plan_utterances", "prepare_tts", "read_sentences", "synthesize"]
