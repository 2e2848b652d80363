"""Decoding speed per search, measured in one run: WER, RTF, LLM forward passes per written token,
peak RSS and the speed ratio to xasr's greedy loop.

Each way decodes the same inputs in its own subprocess (so peak RSS is its own), one after another,
once untimed on the first 8 inputs (warm-up) and then `--repeats` times; the best wall time counts.

    python bench/decode_speed.py [--model DIR] --manifest data/real_en_cuts_dev.jsonl.gz \\
        [--ref data/real_en_supervisions_dev.jsonl.gz] [--ways greedy draft cif greedy-b1 draft-b1] \\
        [--limit 100] [--repeats 2] [--threads 2]

Ways: `hf` (transformers' generate, greedy), `greedy` (xasr's KV-cache loop), `draft` (the same
transcripts, the LLM verifying the CIF draft), `cif` (the token head alone), `fusion` (the token head
rescored by the LLM as a language model, the model's fusion beams), `greedy-int8`, `cif-int8`,
`fusion-int8` (int8 weights, `--int8`); a `-fp32`
suffix holds the frozen LLM in float32 instead of the model's own dtype (default-en: bf16 where the
CPU has native bf16), a `-b1` suffix decodes one input at a time (batch 1) instead of duration-sorted
batches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = ("hf", "greedy", "draft", "cif", "fusion", "greedy-int8", "cif-int8", "fusion-int8", "greedy-b1", "draft-b1",
        "cif-b1", "fusion-b1", "cif-fp32", "greedy-fp32", "fusion-fp32")


def run_way(args: argparse.Namespace) -> None:
    import torch

    from xasr.config import DecodeOptions
    from xasr.decode import collect_inputs, transcribe
    from xasr.loading import load_model

    torch.set_num_threads(args.threads)
    way = args.worker
    base = way.removesuffix("-b1")
    int8, fp32 = base.endswith("-int8"), base.endswith("-fp32")
    search = base.removesuffix("-int8").removesuffix("-fp32")
    model = load_model(args.model or None, int8=int8, llm_dtype="float32" if fp32 else None)
    generation = dataclasses.replace(model.config.generation, search="greedy" if search == "hf" else search,
                                     hf_generate=search == "hf")
    options = DecodeOptions(generation=generation, batch_seconds=1e-3 if way.endswith("-b1") else 120.0)
    inputs, _ = collect_inputs(args.files, manifest=args.manifest)
    inputs = inputs[: args.limit or None]
    list(transcribe(model, inputs[:8], options, progress=False))  # warm-up
    best, hyps, passes, written = float("inf"), {}, 0, 0
    for _ in range(args.repeats):
        model.generation_stats.clear()
        start = time.perf_counter()
        transcripts = list(transcribe(model, inputs, options, progress=False))
        wall = time.perf_counter() - start
        if wall < best:
            best, hyps = wall, {t.id: t.text for t in transcripts}
            passes, written = model.generation_stats.get("forward_passes", 0), model.generation_stats.get("tokens", 0)
    Path(args.out).write_text(json.dumps({
        "wall": best, "hyps": hyps, "passes": passes, "tokens": written,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory or packaged name (default: default-en)")
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--ref", type=Path, help="references (manifest or tsv) for WER")
    parser.add_argument("--ways", nargs="+", default=["greedy", "draft", "cif"], choices=WAYS)
    parser.add_argument("--limit", type=int, default=0, help="decode only the first N inputs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_way(args)

    import soundfile as sf

    from xasr.decode import collect_inputs
    from xasr.score import load_references, score

    inputs, problems = collect_inputs(args.files, manifest=args.manifest)
    if problems or not inputs:
        raise SystemExit("; ".join(problems) or "no inputs")
    inputs = inputs[: args.limit or None]
    seconds = sum(item.cut.duration if item.cut is not None else sf.info(str(item.path)).duration for item in inputs)
    refs = load_references(args.ref) if args.ref else None
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways:
            out = Path(tmp) / f"{way}.json"
            command = [sys.executable, __file__, "--worker", way, "--out", str(out), "--threads", str(args.threads),
                       "--repeats", str(args.repeats), "--limit", str(args.limit), *args.files]
            command += ["--model", args.model] if args.model else []
            command += ["--manifest", str(args.manifest)] if args.manifest else []
            subprocess.run(command, check=True)
            results[way] = json.loads(out.read_text())
    reference = results.get("greedy", next(iter(results.values())))
    print(f"\n{len(inputs)} inputs ({seconds:.1f} s of audio), {args.threads} threads, best of {args.repeats}\n")
    print("| way | wall s | RTF | speed vs greedy | LLM passes / token | same text as greedy | WER % | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for way, r in results.items():
        wer = f"{score({k: refs[k] for k in r['hyps']}, r['hyps']).totals.error_rate:.2f}" if refs else ""
        per_token = f"{r['passes'] / r['tokens']:.2f} ({r['passes']}/{r['tokens']})" if r["tokens"] else "-"
        same = sum(r["hyps"][k] == reference["hyps"].get(k) for k in r["hyps"])
        print(f"| {way} | {r['wall']:.1f} | {r['wall'] / seconds:.3f} | {reference['wall'] / r['wall']:.2f}x | "
              f"{per_token} | {same}/{len(r['hyps'])} | {wer} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
