"""Training throughput: cached encoder features vs recomputing them, and before/after variants, in one process.

Builds the model of a recipe (default: the FSDD C-Former, Whisper tiny.en + SmolLM2-135M), draws
the first N batches of the recipe's sampler from the training cuts once (FSDD's, or `--cuts`), and
trains stage 1 and stage 2 on exactly those batches: with the frozen encoder run on the audio at
every step ("recompute"), and on encoder outputs cached beforehand ("cached"; the caching, done once
for the cuts of those batches, is timed separately). Every run starts from the same adapter weights,
optimiser state and seed, after one untimed warm-up step. Times include loading each batch (audio
decoding and resampling, or reading the HDF5 cache), forward, backward and the optimiser step.

`--variant NAME:KEY=VALUE,...` adds cached-feature runs of the same batches with earlier or
alternative code paths, each reported against the first variant given:
    dtype=float32|bfloat16   the frozen LLM's weights (model.llm.dtype)
    llm=full                 stage 2 as before: the whole prompt through the LLM every step, logits everywhere
    adam=single              AdamW updating one tensor at a time (torch's CPU default)
    cache=float32            encoder outputs cached in float32 instead of float16
    negatives=N              stage-1 token loss over N sampled tokens (0: the whole vocabulary)
    cif_groups=N             groups of the CIF weight predictor's convolution (1: full, d_model: depthwise)
    spelling=N               the token head's spelling score with N-dim vectors (cformer.spelling_dim; 0: none)

    python bench/train_throughput.py [--steps 20] [--stages 1 2] [--cuts CUTS] \
        [--variant before:dtype=float32,llm=full,adam=single,cache=float32 --variant after:dtype=bfloat16]

Prints a table: stage, mode, utterances, seconds, utterances/s, median step, ratio to the baseline
row (recompute, or the first variant), and the loss difference to it at the first step and at worst
(cached features were encoded in other batches, so they differ by float rounding, which training
can then amplify; float16 caching and bfloat16 weights differ more).
"""
from __future__ import annotations

import argparse
import dataclasses
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

from xasr.config import TrainConfig, load_config_file
from xasr.data.dataset import SpeechTextDataset, cache_encoder_features
from xasr.model import XASRModel
from xasr.train import make_optimizer, trainable_parameters, training_autocast

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


def time_training(model: XASRModel, batches: list[CutSet], config: TrainConfig,
                  single_tensor_adam: bool = False) -> dict:
    """Train on `batches` (one step each) after one untimed warm-up step; restores the weights after."""
    device = next(model.adapter.parameters()).device
    params = trainable_parameters(model, config.stage)
    initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    dataset = SpeechTextDataset()
    autocast = training_autocast(config, device)
    model.train()

    def run(cut_batches: list[CutSet]) -> tuple[list[float], list[float]]:
        torch.manual_seed(config.seed)
        optimizer = (torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=False)
                     if single_tensor_adam else make_optimizer(params, config))
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


VARIANT_KEYS = {"dtype": ("float32", "bfloat16"), "llm": ("full",), "adam": ("single",), "cache": ("float32",),
                "negatives": None, "cif_groups": None, "spelling": None}  # None: any integer


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition(":")
    settings = dict(item.split("=", 1) for item in spec.split(",") if item)
    for key, value in settings.items():
        allowed = VARIANT_KEYS.get(key, ())
        if key not in VARIANT_KEYS or (allowed is None and not value.isdigit()) or (allowed and value not in allowed):
            raise SystemExit(f"--variant {text}: unknown setting {key}={value} (see --help)")
    return name, settings


def full_forward_loss(llm):
    """Stage 2 as before the prefix cache: the whole prompt through the LLM, logits at every position."""
    def loss(modalities, transcripts):
        return llm(*llm.build_inputs(modalities, transcripts)).loss
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FSDD folder")
    parser.add_argument("--manifests", type=Path, default=Path("/tmp/xasr_bench_fsdd"))
    parser.add_argument("--cuts", type=Path, default=None, help="training cuts to draw batches from (default: FSDD)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,... (see above)")
    parser.add_argument("--no-recompute", action="store_true", help="skip the runs on the audio")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [parse_variant(v) for v in args.variant] or [("cached", {})]

    configs = {stage: load_config_file(args.config, stage, args.overrides) for stage in args.stages}
    model_config, first_config = configs[args.stages[0]]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuts = CutSet.from_file(args.cuts).to_eager() if args.cuts else training_cuts(args.data, args.manifests)
    batches = first_batches(cuts, first_config, args.steps)
    for stage, (_, config) in configs.items():
        if (config.max_duration, config.num_buckets, config.seed) != (
                first_config.max_duration, first_config.num_buckets, first_config.seed):
            print(f"note: stage {stage} samples batches differently; all stages use stage "
                  f"{args.stages[0]}'s batches here")

    def build(settings: dict) -> XASRModel:
        config = dataclasses.replace(model_config, llm=dataclasses.replace(
            model_config.llm, dtype=settings.get("dtype", model_config.llm.dtype)))
        if "negatives" in settings:
            config.loss = dataclasses.replace(config.loss, token_negatives=int(settings["negatives"]))
        if "cif_groups" in settings:
            config.cformer = dataclasses.replace(config.cformer, cif_conv_groups=int(settings["cif_groups"]))
        if "spelling" in settings:
            config.cformer = dataclasses.replace(config.cformer, spelling_dim=int(settings["spelling"]))
        torch.manual_seed(0)  # the same adapter initialisation in every variant
        model = XASRModel.from_config(config).to(device)
        if settings.get("llm") == "full":
            model.llm.transcript_loss = full_forward_loss(model.llm)
        return model

    cache_root = Path(tempfile.mkdtemp(prefix="xasr_bench_features_"))
    needed = CutSet.from_cuts(cut for cuts in batches for cut in cuts)
    cached_batches, cache_seconds = {}, {}
    rows = []
    try:
        for index, (name, settings) in enumerate(variants):
            model = build(settings)
            cache_dtype = settings.get("cache", "float16")
            if cache_dtype not in cached_batches:
                start = time.perf_counter()
                cached = {cut.id: cut for cut in cache_encoder_features(
                    model.encoder, needed, cache_root / cache_dtype, dtype=getattr(torch, cache_dtype))}
                cache_seconds[cache_dtype] = time.perf_counter() - start
                cached_batches[cache_dtype] = [CutSet.from_cuts(cached[cut.id] for cut in cuts) for cuts in batches]
            for stage, (_, config) in configs.items():
                if index == 0 and not args.no_recompute:
                    rows.append((stage, "recompute", name, time_training(model, batches, config)))
                rows.append((stage, "cached", name, time_training(
                    model, cached_batches[cache_dtype], config, single_tensor_adam=settings.get("adam") == "single")))
            del model
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)

    utterances = len(needed)
    print(f"\n{args.steps} steps per run, {utterances} utterances "
          f"({sum(c.duration for c in needed):.1f} s of audio), device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    for dtype, seconds in cache_seconds.items():
        print(f"caching encoder features once ({dtype}): {utterances} utterances in {seconds:.1f} s "
              f"({utterances / seconds:.1f} utt/s)")
    for name, settings in variants:
        print(f"variant {name}: " + (", ".join(f"{k}={v}" for k, v in settings.items()) or "as configured"))
    print("\n| stage | mode | variant | utts | seconds | utt/s | median step s | ratio to first row | "
          "loss diff step 1 / max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for stage in configs:
        stage_rows = [r for r in rows if r[0] == stage]
        base = stage_rows[0][3]
        for _, mode, name, result in stage_rows:
            diffs = [abs(a - b) for a, b in zip(base["losses"], result["losses"])]
            print(f"| {stage} | {mode} | {name} | {result['utterances']} | {result['seconds']:.1f} "
                  f"| {result['utt_per_s']:.1f} | {result['median_step']:.3f} "
                  f"| {result['utt_per_s'] / base['utt_per_s']:.2f}x | {diffs[0]:.1e} / {max(diffs):.1e} |")


if __name__ == "__main__":
    main()
