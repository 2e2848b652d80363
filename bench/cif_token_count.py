#!/usr/bin/env python3
"""How many tokens the C-Former's CIF fires against how many its reference has, per set.

    python bench/cif_token_count.py --set real_en_dev=../shared/data/real_en_dev \\
        --set synthetic=DATA/tts_cuts_check.jsonl.gz [--model default-en]

A model that fires too few tokens deletes words whatever the token head or the LLM does; comparing
real with synthetic speech shows whether the quantity learnt on synthetic speech carries over. Per
set: utterances, reference tokens (the LLM's tokenizer, as training counts them), fired tokens, their
ratio, the share of utterances under- and over-firing by more than 10%, and speaking rate (reference
tokens per second) of each group.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="sets", action="append", required=True, help="NAME=PATH (repeatable)")
    parser.add_argument("--model", default=None, help="model dir or packaged name (default: default-en)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    from decode_vs_faster_whisper import load_set

    from xasr.audio import load_audio
    from xasr.data.batch import pad_stack
    from xasr.loading import load_model

    model = load_model(args.model).eval()
    print("|set|utts|ref tokens|fired|fired / ref|utts < 0.9 ref|utts > 1.1 ref|ref tokens/s: under-firing / others|")
    print("|---|---|---|---|---|---|---|---|")
    for spec in args.sets:
        name, items = load_set(spec)
        refs, fired, rates = [], [], []
        for item in items:
            samples = torch.from_numpy(load_audio(item["path"]))
            waveforms, lengths = pad_stack([samples])
            with torch.no_grad():
                features, feature_lengths = model.encoder(waveforms, lengths)
                out = model.adapter(features, feature_lengths)
            refs.append(len(model.transcript_ids([item["text"]])[0]))
            fired.append(int(out.lengths[0]))
            rates.append(refs[-1] / (len(samples) / 16000))
        refs, fired, rates = np.array(refs), np.array(fired), np.array(rates)
        ratio = fired / np.maximum(refs, 1)
        under = ratio < 0.9
        others = rates[~under].mean() if (~under).any() else float("nan")
        print(f"|{name}|{len(items)}|{refs.sum()}|{fired.sum()}|{fired.sum() / refs.sum():.3f}|"
              f"{under.mean():.0%}|{(ratio > 1.1).mean():.0%}|"
              f"{rates[under].mean() if under.any() else float('nan'):.1f} / {others:.1f}|")


if __name__ == "__main__":
    main()
