"""Where decoding time goes, and what xasr's own greedy loop and int8 buy, measured in one run.

Decodes the same inputs (a cuts manifest or files) three ways, one after another in this process:
transformers' `generate` (greedy, max_new_tokens = the largest CIF budget of the batch), xasr's KV-cache
loop (per-utterance budgets, finished utterances leave the batch), and that loop on a model whose
encoder and LLM linear layers are dynamically quantised to int8. Each way decodes once untimed
(warm-up) and then `--repeats` times; the best wall time counts.

    python bench/decode_speed.py --model EXP/stage2/model --manifest data/fsdd_cuts_test.jsonl.gz \\
        [--ref data/fsdd_supervisions_test.jsonl.gz] [--limit 100] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import soundfile as sf
import torch

from xasr.decode import DecodeOptions, collect_inputs, load_model, transcribe
from xasr.model import GenerationOptions
from xasr.score import load_references, score


def timed(model, inputs, options: DecodeOptions, repeats: int) -> tuple[float, dict[str, str]]:
    list(transcribe(model, inputs[:8], options, progress=False))  # warm-up
    best, hyps = float("inf"), {}
    for _ in range(repeats):
        start = time.perf_counter()
        hyps = {t.id: t.text for t in transcribe(model, inputs, options, progress=False)}
        best = min(best, time.perf_counter() - start)
    return best, hyps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--ref", type=Path, help="references (manifest or tsv) for WER")
    parser.add_argument("--limit", type=int, default=0, help="decode only the first N inputs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    inputs, problems = collect_inputs(args.files, manifest=args.manifest)
    if problems or not inputs:
        raise SystemExit("; ".join(problems) or "no inputs")
    inputs = inputs[: args.limit or None]
    refs = load_references(args.ref) if args.ref else None
    seconds = sum(item.cut.duration if item.cut is not None else sf.info(str(item.path)).duration for item in inputs)

    loop = DecodeOptions()
    hf = dataclasses.replace(loop, generation=GenerationOptions(hf_generate=True))
    rows = []
    model = load_model(args.model)
    for name, options in (("transformers generate", hf), ("xasr KV loop", loop)):
        rows.append((name, *timed(model, inputs, options, args.repeats)))
    del model
    rows.append(("xasr KV loop + int8", *timed(load_model(args.model, int8=True), inputs, loop, args.repeats)))

    print(f"\n{len(inputs)} inputs ({seconds:.1f} s of audio), {args.threads} threads, best of {args.repeats}\n")
    print("| decoder | wall s | RTF | speed-up | WER % |")
    print("|---|---|---|---|---|")
    for name, wall, hyps in rows:
        wer = f"{score({k: refs[k] for k in hyps}, hyps).totals.error_rate:.2f}" if refs else ""
        rtf = f"{wall / seconds:.3f}" if seconds else ""
        print(f"| {name} | {wall:.1f} | {rtf} | {rows[0][1] / wall:.2f}x | {wer} |")


if __name__ == "__main__":
    main()
