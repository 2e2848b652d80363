#!/usr/bin/env python3
"""Start a C-Former for a new frozen encoder from one trained on another encoder.

    local/swap_encoder.py --model xasr/pretrained/default-en --config conf/cformer.yaml \
        --set model.encoder.source=whisper-base \
        --old-features F_TINY/cuts.jsonl.gz --new-features F_BASE/cuts.jsonl.gz --output-dir EXP/base_init

Everything after the input projection is copied from `--model`. The input projection, whose input
size is the encoder's, is fitted by ridge regression so that on the same utterances (cached features
of both encoders, `xasr cache-features`) the new encoder's frames map to what the old projection made
of the old encoder's frames. Both encoders must give the same frame rate (Whisper sizes: 50 per second).
Prints the fraction of the old projection's variance the fit explains (R^2).
"""

import argparse
from pathlib import Path

import torch
from lhotse import CutSet

from xasr.config import load_config_file
from xasr.model import XASRModel


def paired_frames(old_cuts: Path, new_cuts: Path, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of both encoders for the cuts the two manifests share, up to `max_frames`."""
    old = {cut.id: cut for cut in CutSet.from_file(old_cuts)}
    xs_old, xs_new, total = [], [], 0
    for cut in CutSet.from_file(new_cuts):
        if cut.id not in old:
            continue
        new_frames = torch.from_numpy(cut.load_custom("encoder_features")).float()
        old_frames = torch.from_numpy(old[cut.id].load_custom("encoder_features")).float()
        length = min(len(new_frames), len(old_frames))
        xs_old.append(old_frames[:length])
        xs_new.append(new_frames[:length])
        total += length
        if total >= max_frames:
            break
    if not xs_new:
        raise SystemExit(f"{old_cuts} and {new_cuts} share no cuts: cache both encoders' features of the same cuts")
    return torch.cat(xs_old), torch.cat(xs_new)


def fit_projection(x: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Least squares y ~ x @ W.T + b with an L2 penalty `ridge` per frame; returns W, b and R^2."""
    x1 = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    gram = x1.T @ x1 + ridge * len(x) * torch.eye(x1.shape[1], dtype=x1.dtype)
    solution = torch.linalg.solve(gram, x1.T @ y.double())
    residual = (x1 @ solution - y.double()).pow(2).sum()
    r2 = 1 - residual / (y.double() - y.double().mean(0)).pow(2).sum()
    return solution[:-1].T.float(), solution[-1].float(), float(r2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="trained model directory (the old encoder)")
    parser.add_argument("--config", type=Path, required=True, help="recipe YAML naming the new encoder")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override section.key=value, repeatable (as in xasr train --set)")
    parser.add_argument("--old-features", type=Path, required=True, help="cached features of the old encoder")
    parser.add_argument("--new-features", type=Path, required=True, help="cached features of the new encoder")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--max-frames", type=int, default=100_000)
    parser.add_argument("--ridge", type=float, default=1e-2)
    args = parser.parse_args()

    config, _ = load_config_file(args.config, "convert", args.overrides)
    torch.manual_seed(0)
    model = XASRModel.from_config(config)
    old_model = XASRModel.load(args.model, llm=model.llm, check_frozen=False)  # one frozen LLM for both
    old_state, new_state = old_model.adapter.state_dict(), model.adapter.state_dict()
    copied = {k: v for k, v in old_state.items() if not k.startswith("input_proj.")}
    if set(copied) != {k for k in new_state if not k.startswith("input_proj.")}:
        raise SystemExit(f"{args.config}: its C-Former differs from {args.model}'s beyond the input projection")
    old_frames, new_frames = paired_frames(args.old_features, args.new_features, args.max_frames)
    with torch.no_grad():
        target = old_model.adapter.input_proj(old_frames)
    weight, bias, r2 = fit_projection(new_frames, target, args.ridge)
    model.adapter.load_state_dict({**copied, "input_proj.weight": weight, "input_proj.bias": bias})
    path = model.save_pretrained(args.output_dir)
    print(f"{len(new_frames)} paired frames, R^2 {r2:.3f}: {path}")


if __name__ == "__main__":
    main()
