#!/usr/bin/env python3
"""Choose the fusion search's weights for picture contexts on held-out synthetic captions (never on
the real recordings): WER per setting on DEV_CUTS (tts captions with another seed) degraded like the
test conditions (clean, 5 dB, masked) and shown nothing, their own picture or a wrong one.

    xasr prepare tts DATA_DIR/tuxpaint_captions.tsv DATA_DIR/captions_dev --num-utterances 150 --seed 99 \
      --engine piper --engine espeak --engine flite --engine festival --engine rhvoice --engine pico \
      --engine mbrola --prefix tts --split dev
    local/tune_fusion.py MODEL DATA_DIR/captions_dev/tts_cuts_dev.jsonl.gz --work-dir exp/masr/tune

Each setting is lm_weight x fusion_lm_top_k x insertion penalty (--insert-penalties; "off" = no
insertions, otherwise fusion_insert_top_k --insert-top-k with that penalty).
"""

import argparse
import copy
import dataclasses
import itertools
import random
import time
from pathlib import Path

from lhotse import CutSet

from xasr import load_model
from xasr.augment import degrade_cuts
from xasr.config import DecodeOptions
from xasr.data.dataset import IMAGE_FIELD, cut_text
from xasr.data.tuxpaint import read_stamps
from xasr.decode import AudioInput, transcribe
from xasr.score import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("dev_cuts", type=Path)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--num-utts", type=int, default=150)
    parser.add_argument("--lm-weights", default="0.3,0.6,1.0")
    parser.add_argument("--lm-top-ks", default="0,8")
    parser.add_argument("--token-bonus", type=float, default=2.0)
    parser.add_argument("--insert-penalties", default="off")
    parser.add_argument("--insert-top-k", type=int, default=4)
    parser.add_argument("--conditions", default="clean,snr5,masked")
    args = parser.parse_args()
    stamps = {s.id: s for s in read_stamps()}
    ids = sorted(stamps)
    cuts = CutSet.from_file(args.dev_cuts).to_eager().subset(first=args.num_utts)
    model = load_model(args.model)
    sets = {}
    conditions = {"clean": (None, 0.0), "snr5": (5.0, 0.0), "masked": (None, 0.35)}
    for name in args.conditions.split(","):
        snr, mask = conditions[name]
        degraded = degrade_cuts(cuts, args.work_dir / name, snr, mask, seed=7)
        for visual in ("none", "image", "wrong"):
            items, refs = [], {}
            for cut in degraded:
                stamp = cut.supervisions[0].custom["sentence_id"]
                others = [s for s in ids if stamps[s].caption != stamps[stamp].caption]
                path = {"none": None, "image": stamps[stamp].image,
                        "wrong": stamps[random.Random(f"wrong-{cut.id}").choice(others)].image}[visual]
                shown = copy.deepcopy(cut)
                supervision = shown.supervisions[0]
                supervision.custom = {k: v for k, v in supervision.custom.items() if k != IMAGE_FIELD}
                if path is not None:
                    supervision.custom[IMAGE_FIELD] = str(path)
                items.append(AudioInput(id=shown.id, cut=shown))
                refs[shown.id] = cut_text(shown)
            sets[name, visual] = (items, refs)
    weights = [float(w) for w in args.lm_weights.split(",")]
    top_ks = [int(k) for k in args.lm_top_ks.split(",")]
    penalties = [None if p == "off" else float(p) for p in args.insert_penalties.split(",")]
    print("| lm_weight | fusion_lm_top_k | insertion penalty | " + " | ".join(f"{n} {v}" for n, v in sets)
          + " | seconds |")
    print("|---:|---:|---:|" + "---:|" * (len(sets) + 1))
    for weight, top_k, penalty in itertools.product(weights, top_ks, penalties):
        inserts = ({} if penalty is None else
                   {"fusion_insert_top_k": args.insert_top_k, "fusion_insert_penalty": penalty})
        generation = dataclasses.replace(model.config.generation, search="fusion", fusion_context="image",
                                         lm_weight=weight, fusion_lm_top_k=top_k, token_bonus=args.token_bonus,
                                         **inserts)
        started, cells = time.time(), []
        for (name, visual), (items, refs) in sets.items():
            options = DecodeOptions(generation=generation, vad="never")
            hyps = {t.id: t.text for t in transcribe(model, items, options=options, progress=False)}
            cells.append(f"{score(refs, hyps).error_rate:.2f}")
        shown = "off" if penalty is None else penalty
        print(f"| {weight} | {top_k} | {shown} | " + " | ".join(cells) + f" | {time.time() - started:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
