#!/usr/bin/env python3
"""The tuxpaint/masr results as one table: WER of the 65 real captions per condition (clean, 10, 5,
0 dB, masked) and visual context (none, own picture, wrong picture, own clip, wrong clip), the
differences to audio only, the words correct and the share of audio-only's missed words each picture
or clip brings back, and the speech-only sets before (default-en) and after stage 3.
Reads the scores-*.json files stage 5/6 wrote under EXP (decode/ and decode_default_en/)."""

import argparse
import json
from pathlib import Path

CONDITIONS = [("clean", "clean"), ("snr10", "10 dB"), ("snr5", "5 dB"), ("snr0", "0 dB"), ("masked", "masked")]
VISUALS = [("none", "audio only"), ("image", "right image"), ("wrong", "wrong image"),
           ("video", "right video"), ("wrongvideo", "wrong video")]


def score(exp: Path, decode: str, name: str):
    files = sorted((exp / decode / name).glob(f"scores-{name}-*.json"))
    return json.loads(files[0].read_text()) if files else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("exp", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    lines = ["| tuxpaint real captions, %WER | " + " | ".join(label for _, label in CONDITIONS) + " |",
             "|---|" + "---:|" * len(CONDITIONS)]
    wer = {}
    for visual, label in VISUALS:
        cells = []
        for condition, _ in CONDITIONS:
            result = score(args.exp, "decode", f"tux{condition}_{visual}")
            wer[visual, condition] = result["error_rate"] if result else None
            cells.append(f"{result['error_rate']:.2f}" if result else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for visual, label in VISUALS[1:]:
        cells = []
        for condition, _ in CONDITIONS:
            a, b = wer["none", condition], wer[visual, condition]
            cells.append(f"{b - a:+.2f}" if a is not None and b is not None else "-")
        lines.append(f"| {label} - audio only | " + " | ".join(cells) + " |")
    lines += ["", "| words correct (of the reference words) | " + " | ".join(label for _, label in CONDITIONS) + " |",
              "|---|" + "---:|" * len(CONDITIONS)]
    correct = {}
    for visual, label in VISUALS:
        cells = []
        for condition, _ in CONDITIONS:
            result = score(args.exp, "decode", f"tux{condition}_{visual}")
            correct[visual, condition] = (result["counts"]["correct"], result["counts"]["words"]) if result else None
            cells.append("{} / {}".format(*correct[visual, condition]) if result else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    # of the words audio alone gets wrong, the share the picture (clip) brings back
    for visual, label in VISUALS[1:]:
        cells = []
        for condition, _ in CONDITIONS:
            a, b = correct["none", condition], correct[visual, condition]
            missed = a[1] - a[0] if a and b else 0
            cells.append(f"{100 * (b[0] - a[0]) / missed:+.1f}%" if missed else "-")
        lines.append(f"| {label}: recovered of audio-only's missed words | " + " | ".join(cells) + " |")
    lines += ["", "| speech only, %WER | before stage 3 (default-en) | after stage 3 |", "|---|---:|---:|"]
    for name in ("real_en_dev", "tuxclean_none"):
        before, after = score(args.exp, "decode_default_en", name), score(args.exp, "decode", name)
        if before or after:
            lines.append(f"| {name} | {before['summary'] if before else '-'} | {after['summary'] if after else '-'} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
