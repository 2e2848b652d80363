"""Synthesizing a planned corpus: engines checked first, utterances spoken by a pool of workers,
audio written atomically to `output_dir/audio/{engine}/{utt_id}.flac` (files already there are kept,
so an interrupted run simply continues), per-engine throughput, and the lhotse manifests."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
import soundfile as sf
from lhotse import AudioSource, Recording

from xasr.data.manifests import CorpusSplit, split_from_utterances
from xasr.data.tts.engines import ENGINES, EngineNotFoundError, engine_named
from xasr.data.tts.engines.festival import FESTIVAL_VOICES
from xasr.data.tts.plan import TtsUtterance, check_engine_names, plan_utterances, read_sentences
from xasr.io import atomic_path, short_error

log = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Throughput of one engine over the utterances synthesized in this run (not resumed ones)."""

    engine: str
    utterances: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    synthesis_seconds: float = 0.0  # summed over utterances, so over all workers together

    @property
    def real_time_factor(self) -> float:
        return self.synthesis_seconds / self.audio_seconds if self.audio_seconds else math.nan

    @property
    def utterances_per_second(self) -> float:
        return self.utterances / self.synthesis_seconds if self.synthesis_seconds else math.nan


@dataclass
class TtsStats:
    engines: Dict[str, EngineStats]
    resumed: int = 0  # utterances whose audio was already there
    wall_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "utt_id (sentence id): error"

    def table(self) -> str:
        """Per-engine throughput as a plain text table."""
        lines = [f"{'engine':<9} {'utts':>6} {'failed':>6} {'audio_s':>9} {'synth_s':>9} "
                 f"{'RTF':>6} {'utt/s':>7}"]
        for s in self.engines.values():
            lines.append(f"{s.engine:<9} {s.utterances:>6} {s.failed:>6} {s.audio_seconds:>9.1f} "
                         f"{s.synthesis_seconds:>9.1f} {s.real_time_factor:>6.3f} "
                         f"{s.utterances_per_second:>7.2f}")
        lines.append(f"{self.resumed} resumed from existing files; wall time {self.wall_seconds:.1f} s")
        return "\n".join(lines)


@dataclass
class TtsSplit(CorpusSplit):
    """A CorpusSplit that also carries the run's throughput statistics."""

    stats: Optional[TtsStats] = None


def prepare_tts(
    text_file: Path | str,
    output_dir: Path | str,
    num_utterances: Optional[int] = None,
    engines: Sequence[str] = ENGINES,
    seed: int = 0,
    num_jobs: int = 2,
    sampling_rate: int = 16000,
    language: str = "en",
    split: str = "train",
) -> Dict[str, TtsSplit]:
    """Synthesize `num_utterances` sentences of `text_file` (all by default) with `engines`.

    Returns `{split: TtsSplit}`; its `stats` has the per-engine throughput. Raises
    EngineNotFoundError before synthesizing anything when an engine or voice is missing.
    """
    if language != "en":
        raise ValueError(f"language '{language}': only 'en' voices are configured")
    start = time.perf_counter()
    plan = plan_utterances(read_sentences(text_file), num_utterances, engines, seed)
    engines = check_engine_names(engines)
    check_engines(engines, {u.voice for u in plan if u.engine == "festival"})

    audio_dir = Path(output_dir) / "audio"
    for engine in engines:
        (audio_dir / engine).mkdir(parents=True, exist_ok=True)
        for stale in (audio_dir / engine).glob(".*.tmp"):  # left by an interrupted run
            stale.unlink()
    num_samples: dict[str, int] = {}
    jobs = []
    for utt in plan:
        path = _audio_path(audio_dir, utt)
        existing = _valid_length(path, sampling_rate)
        if existing:
            num_samples[utt.id] = existing
        else:
            jobs.append((utt, str(path), sampling_rate))
    stats = TtsStats({engine: EngineStats(engine) for engine in engines}, resumed=len(num_samples))
    log.info("%d utterances planned (%s), %d already synthesized, %d to do with %d job(s)",
             len(plan), ", ".join(f"{e}: {sum(u.engine == e for u in plan)}" for e in engines),
             len(num_samples), len(jobs), num_jobs)

    by_id = {utt.id: utt for utt in plan}
    for utt_id, samples, seconds, error in _run(jobs, num_jobs):
        engine_stats = stats.engines[by_id[utt_id].engine]
        if error:
            engine_stats.failed += 1
            stats.failures.append(f"{utt_id} (sentence {by_id[utt_id].sentence_id}): {error}")
            log.warning("synthesis failed for %s (sentence %s): %s", utt_id, by_id[utt_id].sentence_id, error)
            continue
        num_samples[utt_id] = samples
        engine_stats.utterances += 1
        engine_stats.audio_seconds += samples / sampling_rate
        engine_stats.synthesis_seconds += seconds
    stats.wall_seconds = time.perf_counter() - start
    log.info("TTS throughput:\n%s", stats.table())
    for engine, engine_stats in stats.engines.items():
        planned = sum(u.engine == engine for u in plan)
        if planned and engine_stats.failed == planned:
            first = next(f for f in stats.failures if by_id[f.split(" ", 1)[0]].engine == engine)
            raise RuntimeError(f"{engine} failed for all {planned} utterances, first: {first}")

    utterances = []
    for utt in plan:
        if utt.id not in num_samples:
            continue
        recording = _recording(utt.id, _audio_path(audio_dir, utt), num_samples[utt.id], sampling_rate)
        utterances.append((recording, utt.text, utt.speaker, language))
    manifests = split_from_utterances(utterances)
    for supervision in manifests.supervisions:  # engine/voice/rate/pitch, for filtering later
        supervision.custom = by_id[supervision.id].custom
    return {split: TtsSplit(manifests.recordings, manifests.supervisions, stats=stats)}


def check_engines(engines: Iterable[str], festival_voices: Iterable[str] = tuple(FESTIVAL_VOICES)) -> None:
    """Raise EngineNotFoundError, saying what to install, unless every engine can speak a word."""
    for name in engines:
        engine = engine_named(name)
        for settings in engine.probe_voices(voices=festival_voices):
            probe = TtsUtterance("probe", "probe", "test", name, **settings)
            try:
                audio, _ = synthesize(probe)
            except EngineNotFoundError:
                raise
            except Exception as e:
                raise RuntimeError(f"{name} ({probe.voice}) cannot synthesize a test word: {e}") from None
            if len(audio) == 0:
                raise RuntimeError(f"{name} ({probe.voice}) synthesized no audio for a test word")


def synthesize(utt: TtsUtterance) -> tuple[np.ndarray, int]:
    """Speak one utterance: (mono float32 samples, their sampling rate)."""
    return engine_named(utt.engine).synthesize(utt)


def _synthesize_job(job: tuple[TtsUtterance, str, int]) -> tuple[str, int, float, Optional[str]]:
    """Pool worker: synthesize, resample, write atomically; (utt_id, samples, seconds, error)."""
    from xasr.audio import to_mono_16k

    utt, path, sampling_rate = job
    try:
        engine = engine_named(utt.engine)
        engine.load()
        start = time.perf_counter()
        audio, rate = synthesize(utt)
        audio = np.clip(to_mono_16k(audio, rate, sampling_rate), -1.0, 1.0)
        seconds = time.perf_counter() - start
        if len(audio) == 0:
            return utt.id, 0, seconds, "no audio synthesized"
        with atomic_path(path, suffix=".flac") as tmp:
            sf.write(str(tmp), audio, sampling_rate, format="FLAC", subtype="PCM_16")
        return utt.id, len(audio), seconds, None
    except Exception as e:  # one bad sentence must not end a run of thousands
        return utt.id, 0, 0.0, f"{type(e).__name__}: {short_error(e, 300)}"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _run(jobs: list, num_jobs: int) -> Iterable[tuple[str, int, float, Optional[str]]]:
    from tqdm import tqdm

    if not jobs:
        return
    progress = tqdm(total=len(jobs), desc="tts", unit="utt")
    if num_jobs <= 1:
        for job in jobs:
            yield _synthesize_job(job)
            progress.update()
    else:
        import multiprocessing

        # spawn: workers must not inherit the parent's torch/onnxruntime threads
        with multiprocessing.get_context("spawn").Pool(num_jobs, initializer=_init_worker) as pool:
            chunksize = max(1, min(8, len(jobs) // (num_jobs * 16)))
            for result in pool.imap_unordered(_synthesize_job, jobs, chunksize=chunksize):
                yield result
                progress.update()
    progress.close()


def _audio_path(audio_dir: Path, utt: TtsUtterance) -> Path:
    return audio_dir / utt.engine / f"{utt.id}.flac"


def _valid_length(path: Path, sampling_rate: int) -> int:
    """Frames of an existing, usable mono file at `sampling_rate`; 0 when it must be (re)made."""
    if not path.is_file():
        return 0
    try:
        info = sf.info(str(path))
    except Exception:
        return 0
    ok = info.samplerate == sampling_rate and info.channels == 1
    return info.frames if ok else 0


def _recording(utt_id: str, path: Path, num_samples: int, sampling_rate: int) -> Recording:
    return Recording(
        id=utt_id,
        sources=[AudioSource(type="file", channels=[0], source=str(path.resolve()))],
        sampling_rate=sampling_rate,
        num_samples=num_samples,
        duration=num_samples / sampling_rate,
    )
