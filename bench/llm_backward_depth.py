"""What a stage-2 step costs in the frozen LLM, by how deep the backward pass goes.

Stage 2 back-propagates through the whole frozen LLM to reach the speech embeddings (and LoRA in every
layer). If only the top layers carried LoRA and the C-Former stayed frozen, the layers below would run
forward only. This times, on random inputs, one forward + backward of the packaged SmolLM2 with the
gradient starting at layer K (0: the inputs, as stage 2 does now), against a forward alone: the best
of `--repeats` interleaved runs each.

    python bench/llm_backward_depth.py [--from-layers 0 15 24] [--batch 8] [--length 96] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

from xasr.config import LLMConfig
from xasr.llm import LLM


def forward_backward(model, inputs: torch.Tensor, labels: torch.Tensor, from_layer: int) -> float:
    """One forward + backward, with gradients from layer `from_layer` up; returns the loss."""
    decoder = model.model
    positions = torch.arange(inputs.shape[1])[None]
    rotary = decoder.rotary_emb(inputs, positions)
    hidden = inputs.detach().requires_grad_(from_layer == 0)
    for index, layer in enumerate(decoder.layers):
        with torch.set_grad_enabled(index >= from_layer):
            if index == from_layer and from_layer > 0:
                hidden = hidden.detach().requires_grad_(True)
            hidden = layer(hidden, position_embeddings=rotary, position_ids=positions)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    logits = model.lm_head(decoder.norm(hidden))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
    loss.backward()
    return float(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or auto")
    parser.add_argument("--from-layers", type=int, nargs="+", default=[0, 15, 24])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LLM.from_config(LLMConfig(source=args.source, dtype=args.dtype)).model
    for p in model.parameters():
        p.requires_grad_(False)
    dtype = next(model.parameters()).dtype
    inputs = (0.02 * torch.randn(args.batch, args.length, model.config.hidden_size)).to(dtype)
    labels = torch.randint(0, model.config.vocab_size, (args.batch, args.length))

    def forward() -> None:
        with torch.no_grad():
            model(inputs_embeds=inputs)

    ways = {f"forward + backward from layer {k} of {len(model.model.layers)}":
            (lambda k=k: forward_backward(model, inputs, labels, k)) for k in args.from_layers}
    ways["forward only"] = forward
    best = {name: float("inf") for name in ways}
    for step in ways.values():  # warm-up
        step()
    for _ in range(args.repeats):  # interleaved, best of the repeats: this machine's load varies
        for name, step in ways.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)
    rows = list(best.items())
    baseline = rows[0][1]
    print(f"|{args.source} {dtype}, batch {args.batch} x {args.length}, {args.threads} threads|s|vs first row|")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"|{name}|{seconds:.2f}|{baseline / seconds:.2f}x|")


if __name__ == "__main__":
    main()
