#!/usr/bin/env python3
"""Join synthetic cuts manifests and hold out whole sentences for validation.

    local/split_valid.py [--valid-percent 2] DATA_DIR CUTS [CUTS ...]

Writes DATA_DIR/tts_cuts_fit.jsonl.gz (training) and DATA_DIR/tts_cuts_valid.jsonl.gz. A sentence
goes to validation by a hash of its id, with every voicing of it, so validation measures speech the
model has not heard as text either; at least one sentence is held out.
"""

import argparse
import zlib
from pathlib import Path

from lhotse import CutSet

from xasr.io import atomic_path


def sentence_of(cut) -> str:
    """The sentence id (older manifests lack the field: parse `tts[-sN]-ENGINE-SENTENCE-REPEAT`)."""
    custom = cut.supervisions[0].custom or {}
    if custom.get("sentence_id"):
        return custom["sentence_id"]
    parts = cut.id.split("-")
    start = 3 if len(parts) > 1 and parts[1].startswith("s") and parts[1][1:].isdigit() else 2
    return "-".join(parts[start:-1]) or cut.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--valid-percent", type=float, default=2.0)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("cuts", type=Path, nargs="+")
    args = parser.parse_args()
    cuts = CutSet.from_cuts(cut for path in args.cuts for cut in CutSet.from_file(path)).to_eager()
    if len({c.id for c in cuts}) != len(cuts):
        raise SystemExit("the manifests share cut ids: synthesize each corpus with its own --tts-seed")
    score = {s: zlib.crc32(s.encode()) % 10000 / 100 for s in {sentence_of(c) for c in cuts}}
    held = {s for s, v in score.items() if v < args.valid_percent} or {min(score, key=score.get)}
    if len(held) == len(score) and len(score) > 1:
        held = {min(score, key=score.get)}
    valid = cuts.filter(lambda c: sentence_of(c) in held).to_eager()
    fit = cuts.filter(lambda c: sentence_of(c) not in held).to_eager()
    for name, subset in (("fit", fit), ("valid", valid)):
        path = args.data_dir / f"tts_cuts_{name}.jsonl.gz"
        with atomic_path(path, suffix=".jsonl.gz") as tmp:
            subset.to_file(tmp)
        print(f"{path}: {len(subset)} utterances, {sum(c.duration for c in subset) / 3600:.2f} h")


if __name__ == "__main__":
    main()
