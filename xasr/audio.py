"""Read any audio file as mono float32 at 16 kHz, or fail with one error that names the file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from xasr.io import short_error

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """A file that cannot be used as audio; `str()` names the file and the problem."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def load_audio(path: os.PathLike | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode wav/flac/ogg/mp3 (anything libsndfile reads) to a mono float32 array at `sample_rate`.

    Raises AudioError for a missing or unreadable file, something that is not audio, a truncated
    file, no samples at all, or samples that are NaN or infinite.
    """
    path = Path(path)
    info = check_audio_file(path)
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"not a readable audio file ({short_error(e)})") from None
    check_complete(path, info, len(samples))
    if samples.shape[0] == 0:
        raise AudioError(path, "contains no audio samples")
    if not np.isfinite(samples).all():
        raise AudioError(path, "contains NaN or infinite samples")
    return to_mono_16k(samples, file_rate, sample_rate)


def check_readable_file(path: os.PathLike | str) -> Path:
    """`path`, or AudioError when it is missing, a directory, unreadable or empty."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return path


def check_audio_file(path: os.PathLike | str) -> sf._SoundFileInfo:
    """libsndfile's header info of an audio file, or AudioError naming what is wrong: missing,
    unreadable, empty, not audio, or a WAV whose data ends before its header says. (A cut-off
    mp3/ogg shows only once decoded: `load_audio` checks that.)"""
    path = check_readable_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"not a readable audio file ({short_error(e)})") from None
    check_complete(path, info, info.frames)
    return info


def to_mono_16k(samples: np.ndarray, file_rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames, channels) or (frames,) float array -> mono float32 at `sample_rate`."""
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if file_rate != sample_rate:
        resampled = torchaudio.functional.resample(torch.from_numpy(samples), file_rate, sample_rate)
        samples = resampled.numpy()
    return samples


def check_complete(path: Path, info: sf._SoundFileInfo, frames_read: int) -> None:
    """libsndfile quietly returns what it can of a cut-off file; find out whether it was cut."""
    if info.format == "WAV" and _wav_data_missing(path):
        raise AudioError(path, "truncated: the file ends before the audio data its header declares")
    # mp3/ogg headers announce a frame count; decoding far fewer frames means the file was cut
    # (a small slack absorbs encoder padding and estimated VBR lengths).
    if info.frames > 0 and frames_read < 0.98 * info.frames - 1152:
        raise AudioError(
            path, f"truncated: decoded {frames_read} of the {info.frames} frames its header declares"
        )


def _wav_data_missing(path: Path) -> bool:
    """True when a RIFF/WAVE file's `data` chunk claims more bytes than the file holds."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return False
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mark a length the writer never filled in (streamed WAV)
                if chunk_size in (0, 0xFFFFFFFF):
                    return False
                return offset + 8 + chunk_size > size
            offset += 8 + chunk_size + (chunk_size & 1)
    return False
