"""Augmentation: audio-level copies of training cuts, and SpecAugment-style frame masks.

Audio copies (`augment_cuts`) change what the frozen encoder hears, so synthetic speech looks more
like recordings: speed, simulated room reverberation, additive noise or another talker underneath,
telephone band and lossy codecs. They are lhotse's lazy transforms, applied when the audio is loaded
(once, when the encoder outputs are cached).

Degraded copies (`degrade_cuts`) are written to disk, for test conditions and for training on them:
noise at a fixed SNR, and words hidden by noise bursts (`burst_mask`, as in the visual-context ASR
papers that mask words and ask a picture to restore them).

Masks (`mask_frames`, Park et al., 2019) are applied to the frozen encoder's outputs, so they work on
features cached once: every epoch sees the same utterance with different frames and channels
hidden, without a new encoder pass.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, Recording
from torch import Tensor

from xasr.config import AudioAugmentConfig, MaskingConfig
from xasr.io import atomic_path

NOISE_KINDS = ("white", "pink", "brown", "hum")


def coloured_noise(kind: str, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-peak noise: white, pink (1/f power), brown (1/f^2) or mains hum (50/60 Hz with harmonics)."""
    if kind == "hum":
        t = np.arange(num_samples) / sample_rate
        base = rng.choice([50.0, 60.0])
        noise = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
                    for k in range(1, 8))
        noise = noise + 0.05 * rng.standard_normal(num_samples)
    else:
        exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
        spectrum = np.fft.rfft(rng.standard_normal(num_samples))
        frequencies = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
        frequencies[0] = frequencies[1]
        noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=num_samples)
    return (noise / np.abs(noise).max()).astype(np.float32)


def make_noise_cuts(output_dir: Path | str, per_kind: int = 3, seconds: float = 60.0, seed: int = 0,
                    sample_rate: int = 16000) -> CutSet:
    """Write noise recordings of every kind in NOISE_KINDS to `output_dir` (kept when present)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    recordings = []
    for kind in NOISE_KINDS:
        for i in range(per_kind):
            path = output_dir / f"{kind}-{seed}-{i}.wav"
            samples = coloured_noise(kind, int(seconds * sample_rate), sample_rate, rng)
            if not path.is_file():
                with atomic_path(path, suffix=".wav") as tmp:
                    sf.write(tmp, 0.5 * samples, sample_rate)
            recordings.append(Recording.from_file(path, recording_id=path.stem))
    return CutSet.from_cuts(r.to_cut() for r in recordings)


def make_rir_recordings(output_dir: Path | str, count: int = 100, seed: int = 0,
                        sample_rate: int = 16000) -> list[Recording]:
    """Write `count` simulated room impulse responses (lhotse's fast random RIR generator, T60 up to
    0.8 s) to `output_dir` (kept when present): drawing one per cut would cost more than the rest
    of the augmentation together."""
    from lhotse.augmentation.utils import FastRandomRIRGenerator

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    recordings = []
    for i in range(count):
        path = output_dir / f"rir-{seed}-{i}.wav"
        if not path.is_file():
            rir = FastRandomRIRGenerator(sr=sample_rate, room_seed=seed * 100003 + i, source_seed=seed * 100019 + i)()
            with atomic_path(path, suffix=".wav") as tmp:
                sf.write(tmp, rir[0].astype(np.float32), sample_rate, subtype="FLOAT")
        recordings.append(Recording.from_file(path, recording_id=path.stem))
    return recordings


def augment_cuts(cuts: CutSet, config: AudioAugmentConfig | None = None, noise: CutSet | None = None,
                 rirs: list[Recording] | None = None, copy: int = 1, seed: int = 0, fraction: float = 1.0) -> CutSet:
    """An augmented copy of every cut (of a random `fraction` of them), with id `<id>_aug<copy>`.

    Whether a cut is augmented and its effects are drawn from (`seed`, `copy`, the cut's id) alone,
    so a grown set keeps the draws of the cuts it had (a feature cache keyed by cut id stays right);
    only the other talker mixed into a cut is drawn from the whole set.

    Order: speed, reverberation (from `rirs`), telephone band, noise (from `noise`) or another
    talker, codec, gain. Cuts are lazy lhotse transforms: nothing is computed until their audio is
    loaded.
    """
    config = config or AudioAugmentConfig()
    noise_cuts = list(noise) if noise is not None else []
    eager = cuts.to_eager()
    talkers = list(eager)
    augmented = []
    for cut in eager:
        rng = random.Random(f"{seed}-{copy}-{cut.id}")
        if fraction < 1.0 and rng.random() >= fraction:
            continue
        new = cut
        factor = rng.choice(config.speed_factors)
        if factor != 1.0:
            new = new.perturb_speed(factor, affix_id=False)
        if rirs and rng.random() < config.reverb_prob:
            new = new.reverb_rir(rng.choice(rirs), affix_id=False)
        if rng.random() < config.telephone_prob:
            new = new.narrowband("mulaw", affix_id=False)
        if noise_cuts and rng.random() < config.noise_prob:
            source = rng.choice(noise_cuts)
            if source.duration > new.duration:
                offset = rng.uniform(0, source.duration - new.duration)
                new = new.mix(source.truncate(offset=offset, duration=new.duration),
                              snr=rng.uniform(*config.noise_snr), preserve_id="left")
        elif len(talkers) > 1 and rng.random() < config.talker_prob:
            other = rng.choice(talkers)
            if other.id != cut.id:
                start = rng.uniform(0, 0.5 * new.duration)
                # the talker underneath is noise: its words are not in the transcript
                other = other.truncate(duration=min(other.duration, new.duration - start)).drop_supervisions()
                new = new.mix(other.resample(new.sampling_rate), offset_other_by=start,
                              snr=rng.uniform(*config.talker_snr), preserve_id="left")
        if rng.random() < config.codec_prob:
            new = new.compress(rng.choice(config.codecs), compression_level=rng.uniform(0.5, 0.99))
        gain = float(np.exp(rng.uniform(np.log(config.volume[0]), np.log(config.volume[1]))))
        if gain != 1.0:
            new = new.perturb_volume(gain, affix_id=False)
        augmented.append(new.with_id(f"{cut.id}_aug{copy}"))
    return CutSet.from_cuts(augmented)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`speech` plus `noise` (tiled or cut to its length) scaled to `snr_db` below the speech power."""
    noise = np.resize(noise, speech.shape).astype(np.float64)
    speech_power = float(np.mean(speech.astype(np.float64) ** 2))
    noise_power = float(np.mean(noise ** 2)) or 1.0
    scale = np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (speech + scale * noise).astype(np.float32)


def speech_span(samples: np.ndarray, sample_rate: int, threshold_db: float = -30.0) -> tuple[int, int]:
    """(start, end) samples of the region whose 20-ms frames are within `threshold_db` of the loudest
    (the whole signal if nothing is)."""
    frame = max(1, sample_rate // 50)
    count = len(samples) // frame
    if count == 0:
        return 0, len(samples)
    energy = (samples[: count * frame].reshape(count, frame).astype(np.float64) ** 2).mean(axis=1)
    loud = np.flatnonzero(10 * np.log10(energy + 1e-12) >= 10 * np.log10(energy.max() + 1e-12) + threshold_db)
    return int(loud[0]) * frame, int(loud[-1] + 1) * frame


def burst_mask(samples: np.ndarray, sample_rate: int, fraction: float, rng: np.random.Generator,
               level: float = 2.0) -> tuple[np.ndarray, tuple[int, int]]:
    """`samples` with one span of `fraction` of the speech region (`speech_span`) replaced by white
    noise `level` times the speech's RMS, so the words under it are gone; returns (audio, span)."""
    start, end = speech_span(samples, sample_rate)
    width = max(1, int(round(fraction * (end - start))))
    begin = start + int(rng.integers(0, max(1, end - start - width + 1)))
    rms = float(np.sqrt(np.mean(samples[start:end].astype(np.float64) ** 2))) or 0.1
    out = samples.astype(np.float32).copy()
    burst = rng.standard_normal(width)
    out[begin: begin + width] = level * rms * burst / (np.sqrt(np.mean(burst ** 2)) or 1.0)
    return out, (begin, begin + width)


def degrade_cuts(cuts: CutSet, output_dir: Path | str, snr_db: Optional[float] = None, mask_fraction: float = 0.0,
                 seed: int = 0, id_suffix: str = "", noise_kinds: Sequence[str] = ("white", "pink", "brown")) -> CutSet:
    """Write each cut's audio, with noise at `snr_db` (None: none) of a kind drawn per cut from
    `noise_kinds` and/or `mask_fraction` of its speech hidden by a noise burst, to `output_dir`
    (16-bit wav, kept when present), and return the new cuts (ids + `id_suffix`; supervisions,
    pictures included, kept). Draws depend on (`seed`, cut id) only."""
    from lhotse import MonoCut, SupervisionSegment

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    new_cuts = []
    for cut in cuts:
        new_id = f"{cut.id}{id_suffix}"
        path = output_dir / f"{new_id}.wav"
        if not path.is_file():
            rng = np.random.default_rng(list(f"{seed}|{cut.id}".encode()))
            samples = cut.load_audio().mean(axis=0).astype(np.float32)
            if mask_fraction > 0:
                samples, _ = burst_mask(samples, cut.sampling_rate, mask_fraction, rng)
            if snr_db is not None:
                kind = noise_kinds[int(rng.integers(len(noise_kinds)))]
                samples = mix_at_snr(samples, coloured_noise(kind, len(samples), cut.sampling_rate, rng), snr_db)
            peak = float(np.abs(samples).max())
            with atomic_path(path, suffix=".wav") as tmp:
                sf.write(tmp, samples / peak * 0.9 if peak > 1.0 else samples, cut.sampling_rate, subtype="PCM_16")
        recording = Recording.from_file(path, recording_id=new_id)
        supervisions = [SupervisionSegment(id=f"{s.id}{id_suffix}", recording_id=new_id, start=max(0.0, s.start),
                                           duration=min(s.duration, recording.duration), channel=0, text=s.text,
                                           language=s.language, speaker=s.speaker, custom=s.custom)
                        for s in cut.supervisions]
        new_cuts.append(MonoCut(id=new_id, start=0.0, duration=recording.duration, channel=0, recording=recording,
                                supervisions=supervisions))
    return CutSet.from_cuts(new_cuts)


def mask_frames(features: Tensor, lengths: Tensor, config: MaskingConfig,
                generator: torch.Generator | None = None) -> Tensor:
    """A copy of `features` [B, T, D] with random time spans and channel bands zeroed in each utterance."""
    if not config.enabled:
        return features
    batch, frames, dim = features.shape
    keep = torch.ones(batch, frames, dim, dtype=torch.bool, device=features.device)
    positions = torch.arange(frames, device=features.device)
    channels = torch.arange(dim, device=features.device)

    def uniform(high: Tensor) -> Tensor:  # integers in [0, high] per utterance
        draw = torch.rand(batch, generator=generator).to(features.device)
        return (draw * (high + 1).float()).long().clamp_max(high)

    lengths = lengths.to(features.device)
    max_width = torch.minimum((lengths.float() * config.max_time_fraction).long(),
                              torch.full_like(lengths, config.max_time_width))
    for _ in range(config.time_masks):
        width = uniform(max_width)
        start = uniform((lengths - width).clamp_min(0))
        span = (positions[None] >= start[:, None]) & (positions[None] < (start + width)[:, None])
        keep &= ~span[..., None]
    for _ in range(config.feature_masks):
        width = uniform(torch.full_like(lengths, min(config.max_feature_width, dim)))
        start = uniform(dim - width)
        band = (channels[None] >= start[:, None]) & (channels[None] < (start + width)[:, None])
        keep &= ~band[:, None, :]
    return features * keep
