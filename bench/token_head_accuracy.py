#!/usr/bin/env python3
"""The stage-1 token head's accuracy on held-out speech: by how often each token was a training target,
and by where the token is in its utterance (with how often the head named the previous or next token).

    python bench/token_head_accuracy.py --cuts FEATURES/valid/cuts.jsonl.gz \\
        [--train-cuts DATA/tts_cuts_fit.jsonl.gz] [--model default-en] [--model EXP/model ...]

Each model's C-Former fires exactly the reference's token count on the (cached or raw) cuts, as in
training, and its token head names each vector (argmax over the whole vocabulary).

- By frequency (with `--train-cuts`): the number of times the token was a target in those cuts'
  transcripts (the LLM's tokenizer): a head that never names rare tokens shows it in the low rows.
- By position: tenths of the utterance's tokens. CIF that fires a token early or late leaves a vector
  integrating its neighbour's frames, and the head names the neighbour: "prev" and "next" are the
  shares of vectors whose argmax is the previous or the next reference token instead of their own.
  With the count fixed at both ends, such drift is largest mid-utterance.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

BINS = ((0, 0), (1, 9), (10, 99), (100, 999), (1000, None))
POSITIONS = 10


def bin_name(low: int, high) -> str:
    return f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="held-out cuts (with cached features, or audio)")
    parser.add_argument("--train-cuts", action="append", default=[], help="training cuts whose targets are counted")
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
        by_position = [Counter() for _ in range(POSITIONS)]  # per tenth: tokens, hits, prev, next
        dataset = SpeechTextDataset()
        for cut_batch in SimpleCutSampler(cuts, max_duration=args.max_duration):
            batch = dataset[cut_batch]
            targets = model.transcript_ids(batch.texts)
            with torch.no_grad():
                features, lengths = model.encode(batch)
                out = model.adapter(features, lengths, target_lengths=torch.tensor([len(t) for t in targets]))
                for b, target in enumerate(targets):
                    predicted = model.token_head(out.embeddings[b, : len(target)]).argmax(-1).tolist()
                    for k, (token, guess) in enumerate(zip(target, predicted)):
                        place = by_position[min(POSITIONS * k // len(target), POSITIONS - 1)]
                        place["tokens"] += 1
                        place["hits"] += int(token == guess)
                        place["prev"] += int(token != guess and k > 0 and guess == target[k - 1])
                        place["next"] += int(token != guess and k + 1 < len(target) and guess == target[k + 1])
                        seen = counts[token]
                        key = next(i for i, (low, high) in enumerate(BINS)
                                   if seen >= low and (high is None or seen <= high))
                        totals[key] += 1
                        hits[key] += int(token == guess)
        rows.append((name or "default-en", hits, totals, by_position))

    if args.train_cuts:
        print(f"\nheld-out tokens of {args.cuts}, by times seen as a training target in {', '.join(args.train_cuts)}")
        header = ["model", "all"] + [f"seen {bin_name(*b)}" for b in BINS]
        print("|" + "|".join(header) + "|")
        print("|" + "---|" * len(header))
        for name, hits, totals, _ in rows:
            cells = [f"{sum(hits.values()) / max(sum(totals.values()), 1):.3f} ({sum(totals.values())})"]
            cells += [f"{hits[i] / totals[i]:.3f} ({totals[i]})" if totals[i] else "-" for i in range(len(BINS))]
            print(f"|{name}|" + "|".join(cells) + "|")
    print(f"\nheld-out tokens of {args.cuts}, by tenth of the utterance: accuracy (prev / next named instead)")
    header = ["model", "all"] + [f"{10 * i}-{10 * i + 10}%" for i in range(POSITIONS)]
    print("|" + "|".join(header) + "|")
    print("|" + "---|" * len(header))
    for name, _, totals, by_position in rows:
        tokens = sum(p["tokens"] for p in by_position)
        cells = [f"{sum(p['hits'] for p in by_position) / max(tokens, 1):.3f} "
                 f"({sum(p['prev'] for p in by_position) / max(tokens, 1):.2f} / "
                 f"{sum(p['next'] for p in by_position) / max(tokens, 1):.2f})"]
        cells += [f"{p['hits'] / p['tokens']:.3f} ({p['prev'] / p['tokens']:.2f} / {p['next'] / p['tokens']:.2f})"
                  if p["tokens"] else "-" for p in by_position]
        print(f"|{name}|" + "|".join(cells) + "|")


if __name__ == "__main__":
    main()
