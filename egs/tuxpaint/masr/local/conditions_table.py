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
    results = {(visual, condition): score(args.exp, "decode", f"tux{condition}_{visual}")
               for visual, _ in VISUALS for condition, _ in CONDITIONS}

    def header(title: str) -> list[str]:
        return [f"| {title} | " + " | ".join(label for _, label in CONDITIONS) + " |",
                "|---|" + "---:|" * len(CONDITIONS)]

    def rows(cell, visuals=VISUALS, row_label="{}") -> list[str]:
        """One row per visual context, one cell per condition: cell(audio-only result or None, this result)."""
        lines = []
        for visual, label in visuals:
            cells = []
            for condition, _ in CONDITIONS:
                none, this = results["none", condition], results[visual, condition]
                cells.append(cell(none, this) if this else "-")
            lines.append(f"| {row_label.format(label)} | " + " | ".join(cells) + " |")
        return lines

    def recovered(none, this) -> str:  # of the words audio alone gets wrong, the share brought back
        missed = none["counts"]["words"] - none["counts"]["correct"] if none else 0
        return f"{100 * (this['counts']['correct'] - none['counts']['correct']) / missed:+.1f}%" if missed else "-"

    lines = header("tuxpaint real captions, %WER") + rows(lambda none, this: f"{this['error_rate']:.2f}")
    lines += rows(lambda none, this: f"{this['error_rate'] - none['error_rate']:+.2f}" if none else "-", VISUALS[1:],
                  "{} - audio only")
    lines += ["", *header("words correct (of the reference words)"),
              *rows(lambda none, this: f"{this['counts']['correct']} / {this['counts']['words']}")]
    lines += rows(recovered, VISUALS[1:], "{}: recovered of audio-only's missed words")
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
