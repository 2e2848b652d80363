"""Voice-activity segmentation for long-form decoding, with the Silero VAD model (silero-vad, CPU).

    audio file -> blocks of `block_seconds` -> mono float32 16 kHz -> speech probability per 32 ms
    frame -> speech regions (hysteresis, min speech/silence) -> padded segments of at most
    `max_segment_seconds`, in file time

Memory stays bounded whatever the length of the file: a block is read, scored and dropped, and only
the audio of a segment still open is kept (a speech region open at a block edge carries over into
the next block). The result does not depend on `block_seconds`.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import soundfile as sf
import torch

from xasr.audio import SAMPLE_RATE, AudioError, check_audio_file, check_complete, to_mono_16k
from xasr.config import VADConfig
from xasr.io import short_error

FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees with each frame
BATCH_FRAMES = 1024  # frames scored per model call


@dataclass
class Segment:
    start: float  # seconds from the start of the input
    end: float
    samples: np.ndarray = field(repr=False)  # mono float32 at 16 kHz, [start, end)

    @property
    def duration(self) -> float:
        return self.end - self.start


def iter_speech_segments(path: os.PathLike | str, config: Optional[VADConfig] = None) -> Iterator[Segment]:
    """Speech segments of an audio file (wav/flac/ogg/mp3, any rate and channels), read block by block.

    A file that cannot be read raises AudioError naming it (at once when it cannot be opened, when
    reached for a problem further in). Silence gives no segments.
    """
    config = config or VADConfig()
    path = Path(path)
    check_audio_file(path)
    return _iter_file(path, config)


def speech_segments(samples: np.ndarray, config: Optional[VADConfig] = None,
                    sample_rate: int = SAMPLE_RATE) -> list[Segment]:
    """Speech segments of an in-memory signal ((frames,) or (frames, channels) at `sample_rate`)."""
    config = config or VADConfig()
    samples = to_mono_16k(np.asarray(samples, dtype=np.float32), sample_rate)
    segmenter = _Segmenter(config)
    block = max(FRAME, int(config.block_seconds * SAMPLE_RATE))
    segments = []
    for i in range(0, len(samples), block):
        segments.extend(segmenter.feed(samples[i:i + block]))
    segments.extend(segmenter.finish())
    return segments


def _iter_file(path: Path, config: VADConfig) -> Iterator[Segment]:
    segmenter = _Segmenter(config)
    for block in _read_16k(path, config.block_seconds):
        yield from segmenter.feed(block)
    yield from segmenter.finish()


# ---- reading ----------------------------------------------------------------------------------------
def _read_16k(path: Path, block_seconds: float) -> Iterator[np.ndarray]:
    """The file as consecutive mono float32 16 kHz chunks that join up to `load_audio(path)`.

    Each block is resampled with enough input context on both sides that the chunks equal slices
    of the whole-file resampling: the resampler maps each `step` input samples to `out` output
    samples, so blocks are cut at multiples of `step`.
    """
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"not a readable audio file ({short_error(e)})") from None
    with f:
        rate = f.samplerate
        g = math.gcd(rate, SAMPLE_RATE)
        step, out = rate // g, SAMPLE_RATE // g
        # torchaudio's sinc kernel (lowpass_filter_width=6) reaches ~6 periods of the lower rate
        context = step * math.ceil((8 * max(rate, SAMPLE_RATE) // SAMPLE_RATE + 8) / step)
        block = step * max(1, round(block_seconds * rate / step))
        buffer, buffer_at = np.zeros(0, np.float32), 0  # mono input from sample buffer_at on
        done = 0  # input samples already converted (a multiple of step until the end)
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(path, f"cannot decode the audio ({short_error(e)})") from None
            if not np.isfinite(data).all():
                raise AudioError(path, "contains NaN or infinite samples")
            at_end = len(data) < block
            buffer = np.concatenate([buffer, data.mean(axis=1)])
            total = buffer_at + len(buffer)
            if at_end and total == 0:
                raise AudioError(path, "contains no audio samples")
            if rate == SAMPLE_RATE:
                if len(buffer):
                    yield buffer
                buffer, buffer_at, done = buffer[:0], total, total
            else:
                end = total if at_end else (total - context) // step * step
                if end > done:
                    lo = max(buffer_at, done - context)
                    hi = total if at_end else end + context
                    resampled = to_mono_16k(buffer[lo - buffer_at:hi - buffer_at], rate)
                    first = (done - lo) // step * out
                    yield resampled[first:] if at_end else resampled[first:first + (end - done) // step * out]
                    done = end
                    keep = max(buffer_at, done - context)
                    buffer, buffer_at = buffer[keep - buffer_at:], keep
            if at_end:
                break
        # libsndfile quietly stops at a cut-off file; that is only known once it is read
        check_complete(path, f, total)


# ---- model ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _silero() -> "_Silero":
    return _Silero()


class _Silero:
    """Silero VAD's 16 kHz network, scoring many frames per call.

    The packaged JIT model scores one 512-sample frame per call and keeps its state inside. Its
    network is an STFT + conv encoder that sees each frame (with 64 samples of the one before) on
    its own, then an LSTM cell and a linear head. Here the encoder and head run on a whole batch
    of frames and only the cell steps frame by frame: many times faster, same probabilities. The
    state lives with the caller, so one model serves any number of streams.
    """

    def __init__(self):
        threads = torch.get_num_threads()
        from silero_vad import load_silero_vad  # importing silero_vad calls torch.set_num_threads(1)

        torch.set_num_threads(threads)
        net = load_silero_vad()._model  # the 16 kHz network inside the JIT wrapper
        self.stft, self.encoder, self.head = net.stft, net.encoder, net.decoder.decoder
        cell = net.decoder.rnn
        self.w_ih = cell.weight_ih.detach().numpy().T.copy()  # (128, 4 * 128), gates i f g o
        self.w_hh = cell.weight_hh.detach().numpy().T.copy()
        self.bias = (cell.bias_ih + cell.bias_hh).detach().numpy()
        self.hidden_size = cell.weight_hh.shape[1]

    def initial_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(last 64 samples of the previous frame, LSTM h, LSTM c), all zero at the start."""
        return np.zeros(CONTEXT, np.float32), *np.zeros((2, self.hidden_size), np.float32)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """Speech probabilities of (n, 512) consecutive frames, and the state after them."""
        context, h, c = state
        windows = np.concatenate([np.concatenate([context[None], frames[:-1, -CONTEXT:]]), frames], axis=1)
        # TorchScript's profiling executor re-specialises for every new batch size (a stall of
        # ~0.3 s each); unoptimised execution of these few ops is as fast. The flag is per thread.
        with torch.jit.optimized_execution(False):
            features = self.encoder(self.stft(torch.from_numpy(windows))).squeeze(-1).numpy()
        # torch's LSTM on CPU (oneDNN) stalls for seconds now and then on first shapes; a NumPy
        # loop over the cell is as fast and steady
        n, hs = len(frames), self.hidden_size
        gates_in = features @ self.w_ih + self.bias
        outputs = np.empty((n, hs), np.float32)
        for t in range(n):
            z = gates_in[t] + h @ self.w_hh
            s = 0.5 + 0.5 * np.tanh(0.5 * z)  # sigmoid of every gate, without overflow
            c = s[hs:2 * hs] * c + s[:hs] * np.tanh(z[2 * hs:3 * hs])
            h = s[3 * hs:] * np.tanh(c)
            outputs[t] = h
        with torch.jit.optimized_execution(False):
            probs = self.head(torch.from_numpy(outputs)[:, :, None])[:, 0, 0].numpy()
        return probs, (frames[-1, -CONTEXT:].copy(), h, c)


# ---- segmentation -----------------------------------------------------------------------------------
def _cut_index(scores: np.ndarray, threshold: float, tolerance: float = 0.05) -> int:
    """Where to split among candidate cut points scored by speech probability (lower = quieter).

    With no score below `threshold` there is no pause: split at the last candidate (hard split).
    Otherwise cut in the middle of the last run of near-lowest scores, i.e. mid-pause in the latest
    of the deepest pauses, which keeps pieces long.
    """
    best = float(scores.min())
    if best >= threshold:
        return len(scores) - 1
    near = scores <= best + tolerance
    last = int(np.flatnonzero(near)[-1])
    first = last
    while first > 0 and near[first - 1]:
        first -= 1
    return (first + last) // 2


class _Segmenter:
    """Streams 16 kHz audio in, segments out. Positions are absolute: samples, or frames of 512."""

    def __init__(self, config: VADConfig):
        self.config = config
        self.model = _silero()
        self.state = self.model.initial_state()
        rate = SAMPLE_RATE
        self.min_speech = round(config.min_speech_seconds * rate)
        self.min_silence_frames = max(1, math.ceil(config.min_silence_seconds * rate / FRAME))
        self.pad = round(config.speech_pad_seconds * rate)
        self.max_len = int(config.max_segment_seconds * rate)
        self.min_piece = min(rate, self.max_len // 4)  # no piece of a split shorter than this

        self.audio, self.audio_at = np.zeros(0, np.float32), 0
        self.total = 0  # samples received
        self.frames = 0  # frames scored
        self.probs: list[float] = []
        self.probs_at = 0
        self.speech_start: Optional[int] = None  # frame where the open speech region started
        self.silence_start: Optional[int] = None  # frame where the pause inside it started
        self.seg_start = 0  # sample where the open segment (padded, or after a split) starts
        self.was_split = False
        self.prev_end = 0

    def feed(self, chunk: np.ndarray) -> list[Segment]:
        self.audio = np.concatenate([self.audio, chunk.astype(np.float32, copy=False)])
        self.total += len(chunk)
        segments = self._score((self.total - self.frames * FRAME) // FRAME)
        self._trim()
        return segments

    def finish(self) -> list[Segment]:
        """Score the last partial frame (zero-padded, as Silero does) and close an open region."""
        segments = self._score(1, pad=True) if self.total > self.frames * FRAME else []
        if self.speech_start is not None:
            end = self.silence_start * FRAME if self.silence_start is not None else self.total
            segments += self._close(min(end, self.total), limit=self.total)
        return segments

    def _score(self, n: int, pad: bool = False) -> list[Segment]:
        segments = []
        for batch_start in range(0, n, BATCH_FRAMES):
            count = min(BATCH_FRAMES, n - batch_start)
            at = self.frames * FRAME - self.audio_at
            frames = self.audio[at:at + count * FRAME]
            if pad:
                frames = np.pad(frames, (0, count * FRAME - len(frames)))
            probs, self.state = self.model(frames.reshape(count, FRAME), self.state)
            for p in probs.tolist():
                self.probs.append(p)
                segments += self._step(self.frames, p)
                self.frames += 1
        return segments

    def _step(self, i: int, p: float) -> list[Segment]:
        cfg = self.config
        if self.speech_start is None:
            if p >= cfg.threshold:
                self.speech_start, self.silence_start, self.was_split = i, None, False
                self.seg_start = max(i * FRAME - self.pad, self.prev_end)
            return []
        if p >= cfg.threshold:
            self.silence_start = None
        elif p < cfg.neg_threshold:
            if self.silence_start is None:
                self.silence_start = i
            if i + 1 - self.silence_start >= self.min_silence_frames:
                return self._close(self.silence_start * FRAME, limit=(i + 1) * FRAME)
        # Bound the open segment: once it surely runs past max_len + min_piece, where its first
        # piece is cut no longer depends on where it ends, so cut it now.
        segments = []
        speech_end = (self.silence_start if self.silence_start is not None else i + 1) * FRAME
        while speech_end - self.seg_start >= self.max_len + self.min_piece:
            cut = self._cut(self.seg_start, self.seg_start + self.max_len)
            segments.append(self._segment(self.seg_start, cut))
            self.seg_start, self.was_split = cut, True
        return segments

    def _close(self, speech_end: int, limit: int) -> list[Segment]:
        """End the open region at `speech_end`; `limit` is how far the audio has been scored."""
        start, self.speech_start, self.silence_start = self.speech_start, None, None
        if not self.was_split and speech_end - start * FRAME < self.min_speech:
            return []
        end = min(speech_end + self.pad, limit, self.total)
        a, segments = self.seg_start, []
        while end - a > self.max_len:
            cut = self._cut(a, min(a + self.max_len, end - self.min_piece))
            segments.append(self._segment(a, cut))
            a = cut
        segments.append(self._segment(a, end))
        self.prev_end = end
        return segments

    def _cut(self, start: int, hi: int) -> int:
        """A frame boundary in [start + min_piece, hi] at the quietest point (see `_cut_index`)."""
        k_lo = -(-(start + self.min_piece) // FRAME)
        k_hi = hi // FRAME
        if k_lo > k_hi:
            return hi
        # boundary k lies between frames k-1 and k: score it by their mean probability
        p = np.asarray(self.probs[k_lo - 1 - self.probs_at:k_hi + 1 - self.probs_at])
        scores = (p[:-1] + p[1:]) / 2
        return (k_lo + _cut_index(scores, self.config.threshold)) * FRAME

    def _segment(self, start: int, end: int) -> Segment:
        samples = self.audio[start - self.audio_at:end - self.audio_at].copy()
        return Segment(start / SAMPLE_RATE, end / SAMPLE_RATE, samples)

    def _trim(self) -> None:
        """Drop audio and probabilities that no segment can still need."""
        if self.speech_start is not None:
            keep = self.seg_start
        else:  # a region starting at the next frame is padded back to here at most
            keep = max(self.prev_end, self.frames * FRAME - self.pad)
        keep = max(keep, self.audio_at)
        self.audio, self.audio_at = self.audio[keep - self.audio_at:], keep
        drop = max(0, keep // FRAME - 1 - self.probs_at)
        del self.probs[:drop]
        self.probs_at += drop
