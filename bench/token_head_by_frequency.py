#!/usr/bin/env python3
"""The stage-1 token head's accuracy on held-out speech, by how often each token was a training target.

    python bench/token_head_by_frequency.py --cuts FEATURES/valid/cuts.jsonl.gz \\
        --train-cuts DATA/tts_cuts_fit.jsonl.gz [--model default-en] [--model EXP/model ...]

Each model's C-Former fires exactly the reference's token count on the (cached or raw) cuts, as in
training, and its token head names each vector (argmax over the whole vocabulary). The accuracy is
split by the number of times the token was a target in `--train-cuts` (their transcripts, tokenised
by the LLM's tokenizer): a head that memorises frequent tokens and never names rare ones shows it
in the low-count rows. Every model is scored on the same vectors and counts.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

BINS = ((0, 0), (1, 9), (10, 99), (100, 999), (1000, None))


def bin_name(low: int, high) -> str:
    return f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="held-out cuts (with cached features, or audio)")
    parser.add_argument("--train-cuts", action="append", required=True, help="training cuts whose targets are counted")
    parser.add_argument("--model", action="append", default=None, help="model dir or packaged name (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-duration", type=float, default=60.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lhotse import CutSet
    from lhotse.dataset import SimpleCutSampler

    from xasr.data.dataset import SpeechTextDataset, cut_text
    from xasr.loading import load_model

    cuts = CutSet.from_file(args.cuts)
    rows = []
    counts: Counter = Counter()
    for name in args.model or [None]:
        model = load_model(name).eval()
        if not counts:
            for path in args.train_cuts:
                for cut in CutSet.from_file(path):
                    counts.update(model.transcript_ids([cut_text(cut)])[0])
        hits: Counter = Counter()
        totals: Counter = Counter()
        dataset = SpeechTextDataset()
        for cut_batch in SimpleCutSampler(cuts, max_duration=args.max_duration):
            batch = dataset[cut_batch]
            targets = model.transcript_ids(batch.texts)
            with torch.no_grad():
                features, lengths = model.encode(batch)
                out = model.adapter(features, lengths, target_lengths=torch.tensor([len(t) for t in targets]))
                for b, target in enumerate(targets):
                    predicted = model.token_head(out.embeddings[b, : len(target)]).argmax(-1).tolist()
                    for token, guess in zip(target, predicted):
                        seen = counts[token]
                        key = next(i for i, (low, high) in enumerate(BINS)
                                   if seen >= low and (high is None or seen <= high))
                        totals[key] += 1
                        hits[key] += int(token == guess)
        rows.append((name or "default-en", hits, totals))

    print(f"held-out tokens of {args.cuts}, by times seen as a training target in {', '.join(args.train_cuts)}")
    header = ["model", "all"] + [f"seen {bin_name(*b)}" for b in BINS]
    print("|" + "|".join(header) + "|")
    print("|" + "---|" * len(header))
    for name, hits, totals in rows:
        cells = [f"{sum(hits.values()) / max(sum(totals.values()), 1):.3f} ({sum(totals.values())})"]
        cells += [f"{hits[i] / totals[i]:.3f} ({totals[i]})" if totals[i] else "-" for i in range(len(BINS))]
        print(f"|{name}|" + "|".join(cells) + "|")


if __name__ == "__main__":
    main()
