#!/usr/bin/env python3
"""Short clips made from the stamp pictures, for the video variant: each stamp becomes a folder of
FRAMES frames (CLIPS_DIR/<stamp id>/NN.png) of a slow zoom in or out, or a pan across the picture,
drawn per stamp from its id (re-running keeps the clips already made)."""

import argparse
import random
from pathlib import Path

from PIL import Image

from xasr.data.tuxpaint import read_stamps
from xasr.encoders.vision import load_image
from xasr.io import atomic_path


def clip_frames(picture: Image.Image, frames: int, rng: random.Random, size: int = 256) -> list[Image.Image]:
    """`frames` crops of `picture`: a zoom (from the whole picture to a 60-75% window, or back) or a
    pan of a 70-80% window from one side to the other, each resized to `size` x `size`."""
    width, height = picture.size
    motion = rng.choice(["zoom-in", "zoom-out", "pan-x", "pan-y"])
    small = rng.uniform(0.6, 0.8)
    cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        if motion.startswith("zoom"):
            scale = 1 - (1 - small) * (t if motion == "zoom-in" else 1 - t)
            x0, y0 = cx - scale / 2, cy - scale / 2
        else:
            scale = small
            x0 = (1 - scale) * (t if motion == "pan-x" else 0.5)
            y0 = (1 - scale) * (t if motion == "pan-y" else 0.5)
        x0, y0 = min(max(x0, 0.0), 1 - scale), min(max(y0, 0.0), 1 - scale)
        box = (x0 * width, y0 * height, (x0 + scale) * width, (y0 + scale) * height)
        out.append(picture.resize((size, size), Image.Resampling.BICUBIC, box=box))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clips_dir", type=Path)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    stamps = read_stamps()
    made = 0
    for stamp in stamps:
        folder = args.clips_dir / stamp.id
        if (folder / f"{args.frames - 1:02d}.png").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(load_image(stamp.image))  # transparency over white, as the model sees it
        for i, frame in enumerate(clip_frames(picture, args.frames, random.Random(stamp.id))):
            with atomic_path(folder / f"{i:02d}.png", suffix=".png") as tmp:
                frame.save(tmp)
        made += 1
    print(f"{args.clips_dir}: {len(stamps)} clips of {args.frames} frames ({made} made now)")


if __name__ == "__main__":
    main()
