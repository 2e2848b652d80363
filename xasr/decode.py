"""Transcribe audio with an xasr model: gather inputs, segment long audio, batch, generate, time words.

    inputs (files, dirs, globs, a manifest, a wav.scp)
      -> segments (the whole input, or voice-activity segments of long audio, in file time)
      -> batches of similar duration -> XASRModel.generate -> words timed by the CIF weights
      -> one `Transcript` per input, in input order

Audio is read one input at a time and decoded in pools of a few minutes, so memory stays bounded
whatever the number or length of the inputs. A bad input becomes a `Transcript` with an `error`;
the others carry on.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import soundfile as sf
import torch

from xasr.audio import SAMPLE_RATE, AudioError, load_audio, to_mono_16k
from xasr.config import DecodeOptions
from xasr.data.batch import Batch, Visual, pad_stack
from xasr.generation import generate
from xasr.io import read_lines, short_error
from xasr.model import XASRModel
from xasr.transcript import Segment, Transcript, Word

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".sph")
SILENCE_PEAK = 1e-4  # digital silence: no sample above about -80 dBFS


@dataclass
class AudioInput:
    """One thing to transcribe: a file, an array (16 kHz mono) or a lhotse cut."""

    id: str
    path: Optional[Path] = None
    samples: Optional[np.ndarray] = None
    cut: Optional[object] = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else self.id


# ---- inputs -----------------------------------------------------------------------------------------
def collect_inputs(paths: Sequence[str] = (), manifest: Optional[Path] = None,
                   wav_scp: Optional[Path] = None) -> tuple[list[AudioInput], list[str]]:
    """Expand files, directories (searched recursively for audio) and globs; read a lhotse cuts
    manifest or a Kaldi wav.scp. Returns the inputs and one line per argument that matched nothing.

    A named file that does not exist stays an input, so that it is reported like any bad file.
    """
    files: list[Path] = []
    problems: list[str] = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                problems.append(f"{arg}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this directory")
            files += found
        elif not path.exists() and any(c in arg for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            if not found:
                problems.append(f"{arg}: no files match this pattern")
            files += found
        else:
            files.append(path)
    explicit: list[AudioInput] = []  # inputs whose ids the user gave (wav.scp, manifest)
    first_seen: dict[str, str] = {}

    def add_explicit(item: AudioInput, where: str) -> None:
        if item.id in first_seen:
            problems.append(f"{where}: id '{item.id}' is used again (first at {first_seen[item.id]}); "
                            "this one is skipped")
            return
        first_seen[item.id] = where
        explicit.append(item)

    if wav_scp is not None:
        for number, line in read_lines(wav_scp):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or parts[1].rstrip().endswith("|"):
                problems.append(f"{wav_scp}:{number}: expected 'utterance-id path' (pipes are not supported)")
                continue
            add_explicit(AudioInput(id=parts[0], path=Path(parts[1].strip())), f"{wav_scp}:{number}")
    if manifest is not None:
        cuts = read_cuts(manifest)
        for number, cut in enumerate(cuts, 1):
            add_explicit(AudioInput(id=cut.id, cut=cut), f"{manifest} cut {number}")
        if len(cuts) == 0:
            problems.append(f"{manifest}: the manifest has no cuts")
    ids = unique_ids(files, taken={item.id for item in explicit})
    return [AudioInput(id=i, path=p) for i, p in zip(ids, files)] + explicit, problems


def read_cuts(path: Path):
    """A lhotse CutSet from a manifest, or ValueError naming the file and the line that is wrong."""
    from lhotse import CutSet
    from lhotse.serialization import deserialize_item

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such manifest")
    cuts = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not JSON ({e.msg}); expected a lhotse cuts manifest") from None
        try:
            cuts.append(deserialize_item(data))
        except Exception as e:  # lhotse raises many kinds
            raise ValueError(f"{path}:{number}: not a lhotse cut ({type(e).__name__}: "
                             f"{short_error(e, 120)})") from None
    return CutSet.from_cuts(cuts)


def unique_ids(paths: Sequence[Path], taken: Iterable[str] = ()) -> list[str]:
    """Ids for files, unique among themselves and against `taken`: the file stem; where stems
    repeat, parent folders are prepended, then the extension added (a.wav, a.mp3), then -2, -3 ..."""
    ids = [p.stem for p in paths]
    depth = 1
    while len(set(ids)) < len(ids) and depth < 8:
        seen: dict[str, int] = {}
        for i in ids:
            seen[i] = seen.get(i, 0) + 1
        ids = ["_".join([*p.parent.parts[-depth:], p.stem]) if seen[i] > 1 else i for p, i in zip(paths, ids)]
        depth += 1
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    ids = [f"{i}_{p.suffix.lstrip('.')}" if counts[i] > 1 and p.suffix else i for p, i in zip(paths, ids)]
    used = set(taken)
    unique = []
    for i in ids:
        candidate, n = i, 2
        while candidate in used:
            candidate, n = f"{i}-{n}", n + 1
        used.add(candidate)
        unique.append(candidate)
    return unique


def as_inputs(items: Iterable[Union[str, Path, np.ndarray, tuple]]) -> list[AudioInput]:
    """Python-API inputs: paths, 16 kHz mono arrays, or (array, sample_rate) pairs."""
    paths, inputs = [], []
    for n, item in enumerate(items):
        if isinstance(item, (str, Path)):
            paths.append(str(item))
            continue
        if isinstance(item, tuple):
            samples, rate = item
            samples = to_mono_16k(np.asarray(samples, dtype=np.float32), rate)
        else:
            samples = np.asarray(item, dtype=np.float32)
            if samples.ndim != 1:
                raise ValueError(f"input {n}: expected a 1-D 16 kHz array, got shape {samples.shape}; "
                                 "pass (array, sample_rate) for other rates or channels")
        inputs.append(AudioInput(id=f"array-{n}", samples=samples))
    expanded, problems = collect_inputs(paths)
    if problems:
        raise ValueError("; ".join(problems))
    return expanded + inputs


# ---- segmentation -----------------------------------------------------------------------------------
def input_duration(item: AudioInput) -> float:
    """Seconds of audio of one input (NaN when its file cannot be read: decoding names the problem)."""
    if item.samples is not None:
        return len(item.samples) / SAMPLE_RATE
    if item.cut is not None:
        return float(item.cut.duration)
    try:
        return sf.info(str(item.path)).duration
    except Exception:
        return math.nan  # load_audio below names the problem


def _load(item: AudioInput) -> np.ndarray:
    if item.samples is not None:
        return item.samples
    if item.cut is not None:
        from xasr.data.dataset import cut_waveform

        try:
            return cut_waveform(item.cut)
        except Exception as e:  # lhotse raises many kinds
            raise AudioError(item.id, f"cannot load the cut's audio ({short_error(e)})") from None
    return load_audio(item.path)


def iter_segments(item: AudioInput, options: DecodeOptions) -> Iterator[tuple[float, np.ndarray]]:
    """(start seconds, 16 kHz samples) of the parts of an input to decode.

    Short inputs are decoded whole unless digitally silent: the VAD misses short words (it rejects
    a fifth of FSDD's spoken digits), and the C-Former fires no token where it hears no speech. Long
    ones, or all with `vad="always"`, are split into voice-activity segments, read block by block.
    """
    duration = input_duration(item)
    if duration > options.max_audio_hours * 3600:
        raise AudioError(item.name, f"too long ({duration / 3600:.1f} h > {options.max_audio_hours:g} h); "
                                    "raise --max-audio-hours to decode it")
    if options.vad == "never":
        yield 0.0, _load(item)
        return
    from xasr.config import VADConfig
    from xasr.vad import iter_speech_segments, speech_segments

    vad_config = VADConfig(max_segment_seconds=options.max_segment_seconds)
    long_form = options.vad == "always" or not duration <= options.max_segment_seconds
    if long_form and item.path is not None:
        for segment in iter_speech_segments(item.path, vad_config):
            yield segment.start, segment.samples
        return
    samples = _load(item)
    if long_form:
        for segment in speech_segments(samples, vad_config):
            yield segment.start, segment.samples
    elif np.abs(samples).max(initial=0.0) > SILENCE_PEAK:
        yield 0.0, samples


# ---- timestamps -------------------------------------------------------------------------------------
def level_crossings(alphas: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Fractional frame index at which the accumulated CIF weight reaches each level (in tokens)."""
    cumulative = torch.cumsum(alphas.double(), 0)
    if len(cumulative) == 0:
        return torch.zeros(len(levels))
    previous = torch.nn.functional.pad(cumulative[:-1], (1, 0))
    frame = torch.searchsorted(cumulative, levels.double()).clamp(max=len(cumulative) - 1)
    start = previous[frame]
    width = (cumulative[frame] - start).clamp_min(1e-12)
    return (frame + ((levels.double() - start) / width).clamp(0, 1)).float()


def token_times(alphas: torch.Tensor, num_tokens: int, frame_rate: float,
                margin: float = 0.1) -> list[tuple[float, float]]:
    """(start, end) seconds of each written token from the CIF weights of its segment.

    The CIF weight accumulated over a segment counts its tokens; written token k of n is given
    the k-th n-th of that weight, starting/ending `margin` of a token inside it, where the weight
    of silence before and after it does not reach.
    """
    if num_tokens == 0:
        return []
    total = float(alphas.sum())
    step = total / num_tokens
    k = torch.arange(num_tokens, dtype=torch.float64)
    starts = level_crossings(alphas, (k + margin) * step) / frame_rate
    ends = level_crossings(alphas, (k + 1 - margin) * step) / frame_rate
    return [(float(s), float(max(e, s))) for s, e in zip(starts, ends)]


def cif_weight_share(alphas: torch.Tensor, num_tokens: int) -> float:
    """How much of a token's CIF weight each written token has, at most 1: the segment's weight
    (the tokens the speech announced) over the tokens written. Below 1 the decoder wrote more than
    the speech holds (an LLM going on by itself), and every word's probability is scaled by it."""
    return 1.0 if num_tokens == 0 else min(1.0, float(alphas.sum()) / num_tokens)


def words_with_times(tokenizer, token_ids: Sequence[int], times: Sequence[tuple[float, float]],
                     offset: float = 0.0, token_probs: Optional[Sequence[float]] = None) -> tuple[str, list[Word]]:
    """Decoded text and its whitespace-separated words, each timed by the tokens it is made of and,
    given `token_probs`, scored by their mean probability."""
    spans, text = [], ""
    for k in range(len(token_ids)):  # character span of each token in the decoded text
        upto = tokenizer.decode(token_ids[: k + 1], skip_special_tokens=True)
        spans.append((len(text), len(upto)))
        text = upto
    words = []
    for match in re.finditer(r"\S+", text):
        tokens = [k for k, (a, b) in enumerate(spans) if a < match.end() and b > match.start()]
        if tokens and times:
            start, end = times[tokens[0]][0], times[tokens[-1]][1]
        else:
            start = end = 0.0
        probability = None
        if tokens and token_probs:
            probability = round(sum(token_probs[k] for k in tokens) / len(tokens), 4)
        words.append(Word(match.group(), round(offset + start, 3), round(offset + end, 3), probability))
    return text.strip(), words


def strip_context(text: str, context: Optional[str]) -> str:
    """Remove the prompt's context when the LLM copies it into the transcript."""
    if not context or not text:
        return text
    for line in context.splitlines():
        line = line.strip()
        for candidate in (line, line.split(":", 1)[-1].strip()):
            if len(candidate) > 3 and text.lower().startswith(candidate.lower()):
                text = text[len(candidate):].lstrip(" .,:;\n")
    return text


# ---- decoding ---------------------------------------------------------------------------------------
@dataclass
class _Piece:
    input_index: int
    start: float
    samples: np.ndarray
    name: str = ""  # the input's id (file names of CIF plots)
    visual: Optional[Visual] = None  # the picture or clip shown with it (image models)

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _visual_for(item: AudioInput, options: DecodeOptions) -> Optional[Visual]:
    """What an input is shown: the picture or clip its manifest names, else `options.image` or
    `options.video`."""
    from xasr.data.dataset import visual_of

    visual = visual_of(item.cut) if item.cut is not None else None
    if visual is None and options.image:
        visual = Visual("image", options.image)
    if visual is None and options.video:
        visual = Visual("video", options.video)
    return visual


def decode_pieces(model: XASRModel, pieces: list[_Piece], options: DecodeOptions) -> list[tuple[Segment, float]]:
    """Decode segments in duration-sorted batches; returns (segment, wall-seconds share) per piece."""
    device = next(model.adapter.parameters()).device
    context = options.prompt_context()
    generation = options.generation or model.config.generation
    if options.search is not None:
        generation = dataclasses.replace(generation, search=options.search)
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i].seconds)
    pictures = None  # a picture may serve every input: read each once
    if model.vision_encoder is not None:
        from xasr.data.dataset import PictureReader

        pictures = PictureReader(model.vision_encoder.preprocess_one, num_frames=model.config.qformer.num_frames,
                                 cache=True)
    results: list = [None] * len(pieces)
    position = 0
    while position < len(order):
        longest = model.encoder.encoded_seconds(pieces[order[position]].seconds)  # Whisper pads short inputs
        size = max(1, int(options.batch_seconds // max(longest, 1e-3)))
        chosen = order[position: position + size]
        position += size
        started = time.time()
        waveforms, lengths = pad_stack([pieces[i].samples for i in chosen])
        batch = Batch(ids=[str(i) for i in chosen], waveforms=waveforms, waveform_lengths=lengths)
        if pictures is not None:
            pictures.fill(batch, [pieces[i].visual for i in chosen])
        batch = batch.to(device)
        outputs = generate(model, batch, num_beams=options.num_beams, context=context,
                                 options=generation)
        wall = time.time() - started
        total_seconds = sum(pieces[i].seconds for i in chosen)
        for i, out in zip(chosen, outputs):
            piece = pieces[i]
            ids = out["token_ids"]
            times = (token_times(out["alphas"], len(ids), model.encoder.frame_rate, options.timestamp_margin)
                     if "alphas" in out else [])
            probs = out.get("token_probs")
            if probs and "alphas" in out:
                share = cif_weight_share(out["alphas"], len(ids))
                probs = [p * share for p in probs]
            text, words = words_with_times(model.llm.tokenizer, ids, times, piece.start, probs)
            cleaned = strip_context(text, context)
            if cleaned != text:  # the copied context is gone: keep the words of what is left
                words = words[len(words) - len(cleaned.split()):] if cleaned else []
                text = cleaned
            segment = Segment(round(piece.start, 3), round(piece.start + piece.seconds, 3), text, words)
            if options.plot_cif_dir is not None and "alphas" in out:
                plot_segment_cif(model, piece, out, segment, options.plot_cif_dir)
            results[i] = (segment, wall * piece.seconds / max(total_seconds, 1e-9))
    return results


def plot_segment_cif(model: XASRModel, piece: _Piece, out: dict, segment: Segment, directory: Path) -> Path:
    """PNG of one decoded segment: waveform, spectrogram, CIF weights and firing positions, with
    the written words at their timestamps in the title."""
    from xasr.plot import plot_cif_alignment

    alphas = out["alphas"]
    fired = int(out.get("cif_tokens", round(float(alphas.sum()))))
    positions = level_crossings(alphas, torch.arange(1, fired + 1, dtype=torch.float64))
    pieces = [model.llm.tokenizer.decode([t]) for t in out["token_ids"]]
    name = piece.name or str(piece.input_index)
    if piece.start > 0:
        name += f"_{piece.start:09.2f}"
    title = f"{name}: " + " ".join(f"{w.word}[{w.start - piece.start:.2f}-{w.end - piece.start:.2f}]"
                                   for w in segment.words)
    Path(directory).mkdir(parents=True, exist_ok=True)
    return plot_cif_alignment(piece.samples, alphas, positions, model.encoder.frame_rate,
                              tokens=pieces if len(pieces) == fired else None,
                              path=Path(directory) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png",
                              title=title if len(title) < 160 else title[:157] + "...")


def transcribe(model: XASRModel, inputs: Sequence, options: Optional[DecodeOptions] = None,
               progress: bool = True, **option_fields) -> Iterator[Transcript]:
    """Yield one `Transcript` per input, in input order, as soon as each is complete.

    `inputs` are `AudioInput`s, or what the Python API takes: audio files, directories, globs, 16 kHz
    arrays and (array, sample_rate) pairs. Options are a `DecodeOptions` or its fields as keywords
    (`num_beams`, `search`, `context`, `hotwords`, `vad`, ...).
    """
    from tqdm import tqdm

    if option_fields:
        if options is not None:
            raise TypeError("give either options=DecodeOptions(...) or its fields as keywords, not both")
        options = DecodeOptions(**option_fields)
    options = options or DecodeOptions()
    inputs = list(inputs)
    if not all(isinstance(item, AudioInput) for item in inputs):
        inputs = as_inputs(inputs)
    model.eval()
    transcripts = [Transcript(id=item.id, path=str(item.path) if item.path else None) for item in inputs]
    pool: list[_Piece] = []
    next_to_emit = 0
    bar = tqdm(total=len(inputs), desc="decoding", unit="file", disable=not progress)

    def pool_full() -> bool:
        return (sum(p.seconds for p in pool) >= options.pool_seconds
                or len({p.input_index for p in pool}) >= options.pool_inputs)

    def flush() -> None:
        for piece, (segment, seconds) in zip(pool, decode_pieces(model, pool, options) if pool else []):
            transcript = transcripts[piece.input_index]
            transcript.segments.append(segment)
            transcript.decode_seconds += seconds
        pool.clear()

    def finished(upto: int) -> Iterator[Transcript]:
        nonlocal next_to_emit
        while next_to_emit < upto:
            transcript = transcripts[next_to_emit]
            transcript.segments.sort(key=lambda s: s.start)
            transcript.text = " ".join(s.text for s in transcript.segments if s.text)
            if transcript.error is None and not transcript.segments:
                transcript.notice = f"{inputs[next_to_emit].name}: no speech found (empty transcript)"
            bar.update(1)
            next_to_emit += 1
            yield transcript

    with torch.inference_mode():
        for index, item in enumerate(inputs):
            transcript = transcripts[index]
            try:
                transcript.duration = input_duration(item)
                for start, samples in iter_segments(item, options):
                    pool.append(_Piece(index, start, samples, item.id, _visual_for(item, options)))
                    if pool_full():
                        flush()
                        yield from finished(index)
                if math.isnan(transcript.duration):
                    transcript.duration = 0.0
            except (AudioError, OSError, ValueError) as e:
                transcript.error = str(e) if isinstance(e, AudioError) else f"{item.name}: {e}"
                transcript.segments = []
                transcript.duration = 0.0 if math.isnan(transcript.duration) else transcript.duration
                pool[:] = [p for p in pool if p.input_index != index]
            if pool_full():
                flush()
                yield from finished(index + 1)
        flush()
        yield from finished(len(inputs))
    bar.close()
