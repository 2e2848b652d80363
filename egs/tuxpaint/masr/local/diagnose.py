#!/usr/bin/env python3
"""Where an image model's errors come from (RESULTS.md, "Why the picture helps so little"):
  - the caption loss (nats/token) the LLM gives the captions of 48 stamps after their own picture,
    their own clip, another stamp's picture, and nothing;
  - on real and synthetic captions: the CIF vectors fired per reference token, and the share of
    reference tokens in the token head's top 8 of some fired vector.

    local/diagnose.py MODEL DATA_DIR
"""

import argparse
import random
from pathlib import Path

import torch
from lhotse import CutSet

from xasr.data.batch import Batch, Visual, pad_stack
from xasr.data.dataset import cut_text, cut_waveform
from xasr.data.tuxpaint import read_stamps
from xasr.model import XASRModel
from xasr.train import picture_reader


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--vision-feature-cache", type=Path, default=None)
    args = parser.parse_args()
    model = XASRModel.load(args.model).eval()
    sample = random.Random(0).sample(read_stamps(), 48)
    reader = picture_reader(model, args.vision_feature_cache)
    shown = {"right picture": [Visual("image", str(s.image)) for s in sample],
             "right clip": [Visual("video", str(args.data_dir / "clips" / s.id)) for s in sample],
             "wrong picture": [Visual("image", str(s.image)) for s in sample[1:] + sample[:1]],
             "nothing": [None] * len(sample)}
    targets = model.transcript_ids([s.caption for s in sample])
    for name, visuals in shown.items():
        pictures = model.image_embeddings(reader.fill(Batch(ids=[s.id for s in sample]), visuals))
        loss = float(model.llm.text_loss(model.visual_lm_prompts(pictures), targets))
        print(f"caption loss after {name}: {loss:.2f} nats/token")
    for name, path in (("real captions", "tuxclean_cuts_none.jsonl.gz"),
                       ("synthetic captions", "captions_dev/tts_cuts_dev.jsonl.gz")):
        fired = tokens = in_top = 0
        for cut in CutSet.from_file(args.data_dir / path).to_eager().subset(first=65):
            waveforms, lengths = pad_stack([cut_waveform(cut)])
            features, feature_lengths = model.encode(Batch(ids=[cut.id], waveforms=waveforms, waveform_lengths=lengths))
            out = model.adapter(features, feature_lengths)
            n = int(out.lengths[0])
            ids = model.transcript_ids([cut_text(cut)])[0]
            fired, tokens = fired + n, tokens + len(ids)
            if n:
                top = set(model.token_head(out.embeddings[0, :n]).topk(8, dim=-1).indices.flatten().tolist())
                in_top += sum(t in top for t in ids)
        print(f"{name}: {fired} vectors fired for {tokens} reference tokens ({fired / tokens:.2f}); "
              f"{in_top / tokens:.1%} of the reference tokens in the head's top 8 of some vector")


if __name__ == "__main__":
    main()
