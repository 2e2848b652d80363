"""Training throughput with cached encoder features vs recomputing them, in one process.

Builds the model of a recipe (default: the FSDD C-Former, Whisper tiny.en + SmolLM2-135M), draws
the first N batches of the recipe's sampler from the FSDD training cuts once, and trains stage 1
and stage 2 on exactly those batches twice each: with the frozen encoder run on the audio at every
step ("recompute"), and on encoder outputs cached beforehand ("cached"; the caching, done once for
the cuts of those batches, is timed separately). Every run starts from the same adapter weights,
optimiser state and seed, after one untimed warm-up step. Times include loading each batch (audio
decoding and resampling, or reading the HDF5 cache), forward, backward and the optimiser step.

    python bench/train_throughput.py [--steps 20] [--stages 1 2] [--manifests /tmp/xasr_bench_fsdd]

Prints a table: stage, mode, utterances, seconds, utterances/s, median step, cached/recompute ratio,
and the loss difference between the modes at the first step and at worst (the cached features were
encoded in other batches, so they differ by float rounding, which training can then amplify).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler

from xasr.data.dataset import SpeechTextDataset, cache_encoder_features
from xasr.model import XASRModel
from xasr.train import TrainConfig, load_config_file, trainable_parameters

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fsdd"
DEFAULT_CONFIG = REPO / "egs" / "fsdd" / "asr" / "conf" / "cformer.yaml"


def training_cuts(data: Path, manifests: Path) -> CutSet:
    """FSDD training cuts, prepared with `xasr prepare fsdd` unless already there."""
    path = manifests / "fsdd_cuts_train.jsonl.gz"
    if not path.is_file():
        subprocess.run(["xasr", "prepare", "fsdd", str(data), str(manifests)], check=True)
    return CutSet.from_file(path).to_eager()


def first_batches(cuts: CutSet, config: TrainConfig, steps: int) -> list[CutSet]:
    """The first `steps` batches (one per optimiser step) of the sampler `xasr.train` builds."""
    if config.accum_grad != 1:
        raise ValueError("this benchmark times one batch per optimiser step: use accum_grad 1")
    sampler = DynamicBucketingSampler(
        cuts, max_duration=config.max_duration, shuffle=True,
        num_buckets=max(2, min(config.num_buckets, len(cuts) // 2)), seed=config.seed)
    sampler.set_epoch(0)
    batches = list(islice(sampler, steps))
    if len(batches) < steps:
        raise ValueError(f"only {len(batches)} batches in an epoch, fewer than --steps {steps}")
    return batches


def time_training(model: XASRModel, batches: list[CutSet], config: TrainConfig) -> dict:
    """Train on `batches` (one step each) after one untimed warm-up step; restores the weights after."""
    device = next(model.adapter.parameters()).device
    params = trainable_parameters(model, config.stage)
    initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    dataset = SpeechTextDataset()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda")
    model.train()

    def run(cut_batches: list[CutSet]) -> tuple[list[float], list[float]]:
        torch.manual_seed(config.seed)
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        seconds, losses = [], []
        for cuts in cut_batches:
            start = time.perf_counter()
            batch = dataset[cuts].to(device)
            with autocast:  # as xasr.train does
                loss = model(batch, stage=config.stage)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
            losses.append(float(loss.detach()))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in initial:
                    p.copy_(initial[name])
        return seconds, losses

    run(batches[:1])  # warm-up: first-call allocations and lazy initialisation
    seconds, losses = run(batches)
    utterances = sum(len(cuts) for cuts in batches)
    return {"utterances": utterances, "seconds": sum(seconds), "median_step": statistics.median(seconds),
            "utt_per_s": utterances / sum(seconds), "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FSDD folder")
    parser.add_argument("--manifests", type=Path, default=Path("/tmp/xasr_bench_fsdd"))
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    configs = {stage: load_config_file(args.config, stage, args.overrides) for stage in args.stages}
    model_config, first_config = configs[args.stages[0]]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = XASRModel.from_config(model_config).to(device)
    batches = first_batches(training_cuts(args.data, args.manifests), first_config, args.steps)
    for stage, (_, config) in configs.items():
        if (config.max_duration, config.num_buckets, config.seed) != (
                first_config.max_duration, first_config.num_buckets, first_config.seed):
            print(f"note: stage {stage} samples batches differently; all stages use stage "
                  f"{args.stages[0]}'s batches here")

    cache_dir = Path(tempfile.mkdtemp(prefix="xasr_bench_features_"))
    try:
        needed = CutSet.from_cuts(cut for cuts in batches for cut in cuts)
        start = time.perf_counter()
        cached_cuts = {cut.id: cut for cut in cache_encoder_features(model.encoder, needed, cache_dir)}
        cache_seconds = time.perf_counter() - start
        cached_batches = [CutSet.from_cuts(cached_cuts[cut.id] for cut in cuts) for cuts in batches]

        rows = []
        for stage, (_, config) in configs.items():
            recompute = time_training(model, batches, config)
            cached = time_training(model, cached_batches, config)
            diffs = [abs(a - b) for a, b in zip(recompute["losses"], cached["losses"])]
            rows.append((stage, "recompute", recompute, None, diffs))
            rows.append((stage, "cached", cached, cached["utt_per_s"] / recompute["utt_per_s"], diffs))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    utterances = len(needed)
    print(f"\n{args.steps} steps per run, {utterances} utterances "
          f"({sum(c.duration for c in needed):.1f} s of audio), device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"caching encoder features once: {utterances} utterances in {cache_seconds:.1f} s "
          f"({utterances / cache_seconds:.1f} utt/s)\n")
    print("| stage | mode | utts | seconds | utt/s | median step s | cached/recompute | loss diff step 1 / max |")
    print("|---|---|---|---|---|---|---|---|")
    for stage, mode, result, ratio, diffs in rows:
        print(f"| {stage} | {mode} | {result['utterances']} | {result['seconds']:.1f} | {result['utt_per_s']:.1f} "
              f"| {result['median_step']:.3f} | {'' if ratio is None else f'{ratio:.2f}x'} "
              f"| {diffs[0]:.1e} / {max(diffs):.1e} |")


if __name__ == "__main__":
    main()
