"""What a synthetic corpus says and how: sentences read from a file, and the plan that gives each
utterance a sentence, an engine and a voice.

The plan is drawn up front from `random.Random(seed)`, so ids and voices are reproducible and a
longer run with the same seed extends a shorter one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from xasr.data.tts.engines import ENGINES, engine_named


@dataclass(frozen=True)
class TtsUtterance:
    """One planned utterance: what to say and how."""

    id: str
    sentence_id: str
    text: str
    engine: str
    voice: str
    rate: float  # a duration scale, or words per minute for espeak-ng and MBROLA
    pitch: Optional[float] = None  # Hz (flite, festival), 0-99 (espeak), percent (RHVoice, Pico), None (piper)
    noise_scale: Optional[float] = None  # piper only
    noise_w: Optional[float] = None  # piper only

    @property
    def speaker(self) -> str:
        """A voice id such as `espeak:en-us+f3:s160:p55` or `piper:joe:ls1.1`."""
        return engine_named(self.engine).speaker(self)

    @property
    def custom(self) -> dict:
        return engine_named(self.engine).custom(self)


def read_sentences(text_file: Path | str) -> list[tuple[str, str]]:
    """`(sentence_id, text)` from an `id<TAB>text` tsv or a plain file of one sentence a line.

    A file is read as tsv when its first non-blank line has a tab; plain lines get ids from their
    line number (`000001`, ...). Blank lines are ignored.
    """
    text_file = Path(text_file)
    if not text_file.is_file():
        raise FileNotFoundError(f"{text_file}: no such file (expected one sentence, or id<TAB>text, a line)")
    raw = text_file.read_text(encoding="utf-8").splitlines()
    lines = [(n, line.strip()) for n, line in enumerate(raw, 1) if line.strip()]
    if not lines:
        raise ValueError(f"{text_file}: no sentences in it; write one sentence (or id<TAB>text) a line")
    is_tsv = "\t" in lines[0][1]
    sentences, seen = [], {}
    for n, line in lines:
        if is_tsv:
            sentence_id, _, text = line.partition("\t")
            sentence_id, text = _safe_id(sentence_id.strip()), " ".join(text.split())
            if not sentence_id or not text:
                raise ValueError(f"{text_file}:{n}: expected id<TAB>text like the first line")
        else:
            sentence_id, text = f"{n:06d}", " ".join(line.split())
        if sentence_id in seen:
            raise ValueError(f"{text_file}:{n}: sentence id '{sentence_id}' repeats line {seen[sentence_id]}")
        seen[sentence_id] = n
        sentences.append((sentence_id, text))
    return sentences


def plan_utterances(
    sentences: Sequence[tuple[str, str]],
    num_utterances: Optional[int] = None,
    engines: Sequence[str] = ENGINES,
    seed: int = 0,
) -> list[TtsUtterance]:
    """Choose sentences (shuffled; reused with a new voice when more are asked for than there are)
    and give each an engine (round-robin) and a random voice, rate and pitch. Ids name the seed
    (`tts-s3-...`; plain `tts-...` for seed 0), so corpora of different seeds never share an id."""
    engines = check_engine_names(engines)
    if not sentences:
        raise ValueError("no sentences to synthesize")
    count = len(sentences) if num_utterances is None else num_utterances
    if count <= 0:
        raise ValueError(f"num_utterances must be positive, got {count}")
    rng = random.Random(seed)
    id_prefix = "tts" if seed == 0 else f"tts-s{seed}"  # corpora drawn with different seeds can be joined
    plan: list[TtsUtterance] = []
    unused: list[int] = []  # this pass over the sentences, shuffled
    repeat = -1  # passes before this one
    # draws happen in utterance order, so a longer run with the same seed extends a shorter one
    for k in range(count):
        if not unused:
            unused, repeat = list(range(len(sentences))), repeat + 1
            rng.shuffle(unused)
        sentence_id, text = sentences[unused.pop()]
        engine = engines[k % len(engines)]
        plan.append(TtsUtterance(id=f"{id_prefix}-{engine}-{sentence_id}-{repeat}", sentence_id=sentence_id,
                                 text=text, engine=engine, **engine_named(engine).draw_voice(rng)))
    return plan


def check_engine_names(engines: Sequence[str]) -> list[str]:
    """The engines, each once, in order; ValueError naming the known ones for an unknown name."""
    if isinstance(engines, str):
        engines = [engines]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(
            f"unknown TTS engine(s) {unknown or '(none given)'}; choose from {', '.join(ENGINES)}")
    return list(dict.fromkeys(engines))


def _safe_id(sentence_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sentence_id)
