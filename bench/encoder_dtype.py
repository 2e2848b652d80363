"""Frozen Whisper encoder in float32 against bfloat16 weights, on the same audio in one run.

    python bench/encoder_dtype.py --cuts CUTS [--source whisper-base] [--num-cuts 24] [--repeats 3] [--threads 1]

Prints seconds per pass (the best of `--repeats`, the two dtypes interleaved so both see the same load),
the speed ratio and the relative difference of the frames (||bf16 - fp32|| / ||fp32||).
"""

from __future__ import annotations

import argparse
import time

import torch
from lhotse import CutSet

from xasr.config import EncoderConfig
from xasr.data.batch import pad_stack
from xasr.data.dataset import cut_waveform
from xasr.encoders import build_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", required=True)
    parser.add_argument("--source", default="whisper-base")
    parser.add_argument("--num-cuts", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuts = CutSet.from_file(args.cuts).subset(first=args.num_cuts).to_eager()
    waveforms, lengths = pad_stack([cut_waveform(c) for c in cuts])
    encoders = {dtype: build_encoder(EncoderConfig(kind="whisper", source=args.source, real_length=True,
                                                   min_seconds=5, dtype=dtype)) for dtype in ("float32", "bfloat16")}
    seconds = {dtype: [] for dtype in encoders}
    frames = {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for dtype, encoder in encoders.items():
                start = time.perf_counter()
                frames[dtype], _ = encoder(waveforms, lengths)
                seconds[dtype].append(time.perf_counter() - start)
    audio = float(lengths.sum()) / 16000
    difference = float((frames["bfloat16"] - frames["float32"]).norm() / frames["float32"].norm())
    print(f"{args.source}, {len(cuts)} cuts, {audio:.1f} s of audio, {args.threads} thread(s)")
    for dtype, times in seconds.items():
        print(f"  {dtype:8s} {min(times):.2f} s per pass (RTF {min(times) / audio:.4f}; all: "
              f"{', '.join(f'{t:.2f}' for t in times)})")
    print(f"  bf16 speed-up {min(seconds['float32']) / min(seconds['bfloat16']):.2f}x, "
          f"relative frame difference {difference:.4f}")


if __name__ == "__main__":
    main()
