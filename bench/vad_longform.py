"""Long-form voice-activity segmentation: speed and memory of xasr.vad.iter_speech_segments.

Builds a long file (espeak-ng sentences at its native 22.05 kHz, with pauses of 0.2-2.5 s and a
faint noise floor, written sentence by sentence) unless one is given, segments it block by block
and prints the number of segments, wall seconds, real-time factor and peak RSS.

    python bench/vad_longform.py [--audio FILE] [--minutes 10] [--block-seconds 30] [--keep PATH]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from xasr.config import VADConfig
from xasr.vad import iter_speech_segments

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Speech recognition with large language models treats audio as a foreign language.",
    "Please call me back tomorrow morning, after the meeting with the team.",
    "It rained all night, and the river rose above the old stone bridge.",
    "Numbers such as forty two and nineteen eighty four are spoken as words.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "A long sentence keeps going for quite some time without any real pause, which is exactly "
    "what a voice activity detector has to cope with when a speaker talks fast.",
    "Thank you.",
]


def build(path: Path, minutes: float, seed: int = 0) -> list[tuple[float, float, str]]:
    """Write `minutes` of espeak-ng speech with pauses to `path` without holding it all in memory.

    Returns what was said: (start, end, sentence) in file seconds. Only whole sentences are written;
    the file ends with the pause before the sentence that would not fit.
    """
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (apt install espeak-ng), or pass --audio FILE")
    rng = np.random.default_rng(seed)
    voiced = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(SENTENCES):
            wav = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
            samples, rate = sf.read(str(wav), dtype="float32")
            voiced.append(samples)
    target = int(minutes * 60 * rate)
    spoken = []
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        written = 0
        while written < target:
            pause = np.zeros(int(rng.uniform(0.2, 2.5) * rate), np.float32)
            index = rng.integers(len(voiced))
            piece = np.concatenate([pause, voiced[index]])
            if written + len(piece) > target:
                piece = pause[: target - written]
            else:
                start = written + len(pause)
                spoken.append((start / rate, (start + len(voiced[index])) / rate, SENTENCES[index]))
            out.write(piece + rng.normal(0, 1e-3, len(piece)).astype(np.float32))
            written += len(piece)
    return spoken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, help="an existing audio file (default: build one)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the built file")
    parser.add_argument("--block-seconds", type=float, default=VADConfig.block_seconds)
    parser.add_argument("--max-segment-seconds", type=float, default=VADConfig.max_segment_seconds)
    parser.add_argument("--keep", type=Path, help="write the built file here instead of a temp dir")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.audio
        if path is None:
            path = args.keep or Path(tmp) / "longform.wav"
            t = time.perf_counter()
            build(path, args.minutes)
            print(f"built {path} ({args.minutes:g} min) in {time.perf_counter() - t:.1f} s")
        info = sf.info(str(path))
        config = VADConfig(block_seconds=args.block_seconds, max_segment_seconds=args.max_segment_seconds)

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        count, speech, longest = 0, 0.0, 0.0
        for segment in iter_speech_segments(path, config):
            count, speech, longest = count + 1, speech + segment.duration, max(longest, segment.duration)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"audio:        {info.duration:.1f} s, {info.samplerate} Hz, {info.channels} ch, {info.format}")
    print(f"config:       {config}")
    print(f"segments:     {count} (speech {speech:.1f} s, longest {longest:.2f} s)")
    print(f"wall:         {wall:.2f} s (includes loading the model)")
    print(f"RTF:          {wall / info.duration:.4f} ({info.duration / wall:.0f}x real time)")
    print(f"peak RSS:     {peak:.0f} MiB (before segmenting: {rss_before:.0f} MiB)")


if __name__ == "__main__":
    main()
