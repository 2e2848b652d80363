"""Training in X-LLM's stages, with exact resume, logs, curves and DDP via torchrun.

Stage 1 (convert): the C-Former learns token-synchronous, language-like embeddings: CIF quantity
    loss + each CIF vector predicting its LLM token through the frozen output embedding.
Stage 2 (align): the frozen LLM transcribes from the adapter's embeddings (optionally with LoRA).
Stage 3 (integrate): auxiliary modalities join; needs an image/video adapter in the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler
from torch.nn.parallel import DistributedDataParallel

from xasr.config import STAGES, TrainConfig
from xasr.data.dataset import PictureReader, SpeechTextDataset
from xasr.distributed import DistributedContext
from xasr.io import atomic_path
from xasr.encoders.vision import VisionFeatureCache
from xasr.model import VISUAL_PLACEHOLDERS, XASRModel

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG_FILE = "log.jsonl"


def trainable_parameters(model: XASRModel, stage: int, train_speech_adapter: bool = False) -> list[torch.nn.Parameter]:
    """The parameter set each stage trains; everything else is frozen for that stage. Stage 3 trains
    the image adapter, and the speech adapter too with `train_speech_adapter`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage}: stages are 1 (convert), 2 (align), 3 (integrate)")
    if stage == 3:
        if model.vision_adapter is None:
            raise ValueError("stage 3 integrates image/video inputs, but this model has no image or video "
                             "adapter (model.vision); speech-only recipes stop after stage 2")
        if not any(p in model.llm.template.segments for p in VISUAL_PLACEHOLDERS) and model.config.loss.image_lm <= 0:
            raise ValueError("stage 3 trains the image adapter, but the prompt has no <image> or <video> and "
                             "loss.image_lm is 0: put <image> before <speech> in llm.instruction, or set "
                             "loss.image_lm")
    modules = [model.adapter] + ([model.ctc_head] if model.ctc_head is not None else [])
    if stage == 3:  # X-LLM stage 3: the image adapter learns; the speech adapter only if asked
        modules = [model.vision_adapter] + (modules if train_speech_adapter else [])
    if not model.config.encoder.frozen:  # an encoder trained from scratch (Conformer) trains in every stage
        modules.append(model.encoder)
    params = [p for m in modules for p in m.parameters()]
    if stage == 2 and model.config.llm.lora_rank > 0:
        params += [p for n, p in model.llm.named_parameters() if "lora_" in n]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return params


def picture_reader(model: XASRModel, feature_dir: Optional[Path] = None) -> Optional[PictureReader]:
    """How the dataset reads pictures and clips for a model with a vision encoder: as pixels, or, given
    `feature_dir`, as the frozen encoder's features kept there (computed once per picture or clip)."""
    if model.vision_encoder is None:
        return None
    encode, cache = None, None
    if feature_dir is not None:
        source = model.config.vision.source or json.dumps(model.config.vision.hf_config)
        encode, cache = model.vision_encoder, VisionFeatureCache(feature_dir, tag=source)
    return PictureReader(model.vision_encoder.preprocess_one, num_frames=model.config.qformer.num_frames,
                         encode=encode, feature_cache=cache)


def training_autocast(config: TrainConfig, device: torch.device) -> torch.autocast:
    """bfloat16 autocast where the config asks for it and the device runs bfloat16 natively."""
    from xasr.nn import cpu_has_native_bf16

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.bf16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16_cpu and cpu_has_native_bf16())


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW updating all parameters in one multi-tensor pass (on CPU torch's default updates them
    one tensor at a time)."""
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def lr_lambda(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warmup then cosine decay to `min_ratio`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _after_step(step: int) -> None:
    """Called after every optimiser step (tests replace it to simulate a crash)."""


def train(model: XASRModel, train_cuts: CutSet, exp_dir: Path | str, config: TrainConfig,
          valid_cuts: Optional[CutSet] = None, vision_feature_dir: Optional[Path | str] = None) -> Path:
    """Train one stage in `exp_dir`, resuming from its checkpoint if there is one.

    Stage 3 keeps the frozen vision features in `vision_feature_dir` (default `exp_dir/vision_features`)
    unless `config.cache_vision_features` is off. Returns the saved model directory `exp_dir/model`.
    """
    exp_dir = Path(exp_dir)
    context = DistributedContext()
    if context.is_main:
        exp_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    model.to(context.device)
    params = trainable_parameters(model, config.stage, config.train_speech_adapter)
    log.info("stage %d (%s): %.2fM trainable parameters on %s x%d", config.stage, STAGES[config.stage],
             sum(p.numel() for p in params) / 1e6, context.device, context.world_size)

    if not config.sync_buckets and not config.drop_last:
        log.warning("sync_buckets: false without drop_last: true ends each epoch at a random point once "
                    "no duration bucket holds a full batch (lhotse's unsynced bucket choice)")
    sampler = _sampler(train_cuts, config, context.rank, context.world_size)
    vision_features = None
    if config.cache_vision_features and config.stage == 3:
        vision_features = Path(vision_feature_dir) if vision_feature_dir is not None else exp_dir / "vision_features"
    dataset = SpeechTextDataset(pictures=picture_reader(model, vision_features))
    # each epoch's iterator draws a seed from `generator`: from the global RNG it would shift every
    # random draw after a mid-epoch resume (dropout, masks, negatives), since the iterator is made anew
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=0,
                                         generator=torch.Generator().manual_seed(config.seed))
    total_steps = config.max_steps or _count_total_steps(train_cuts, config, context.world_size)
    optimizer = make_optimizer(params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config.warmup_steps, total_steps, config.min_lr_ratio))

    step, epoch = 0, 0
    checkpoint_path = exp_dir / CHECKPOINT
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=context.device, weights_only=False)
        if state["stage"] != config.stage:
            raise ValueError(f"{checkpoint_path} belongs to stage {state['stage']}, not {config.stage}: "
                             "use a separate exp dir per stage")
        _load_trainable(model, state)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        step, epoch = state["step"], state["epoch"]
        _set_rng_state(state["rng"][min(context.rank, len(state["rng"]) - 1)])
        if context.is_main:
            _truncate_log(exp_dir / LOG_FILE, step)
        log.info("resumed from %s at epoch %d, step %d", checkpoint_path, epoch, step)

    ddp_model = (DistributedDataParallel(model, device_ids=[context.local_rank] if context.device.type == "cuda"
                                         else None) if context.world_size > 1 else model)
    writer = _summary_writer(exp_dir) if context.is_main else None
    autocast = training_autocast(config, context.device)

    def save_checkpoint() -> None:
        rng = context.gather(_rng_state())  # every rank's, so a resumed run continues each one
        if context.is_main:
            _atomic_save({
                "stage": config.stage, "step": step, "epoch": epoch,
                "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "sampler": sampler.state_dict(), "rng": rng, "train_config": dataclasses.asdict(config),
            }, checkpoint_path)

    model.train()
    start = time.time()
    utterances = 0
    done = config.max_steps is not None and step >= config.max_steps
    while epoch < config.num_epochs and not done:
        sampler.set_epoch(epoch)
        micro_step = 0
        summed: dict[str, float] = {}
        optimizer.zero_grad(set_to_none=True)  # an incomplete accumulation never leaks into the next epoch
        for batch in loader:
            batch = batch.to(context.device)
            # DDP averages gradients over ranks, so dividing by accum_grad makes a step's gradient the
            # mean over its world_size * accum_grad batches of each batch's mean-loss gradient;
            # gradients are all-reduced only on the step's last micro-batch
            syncing = context.world_size == 1 or (micro_step + 1) % config.accum_grad == 0
            with contextlib.nullcontext() if syncing else ddp_model.no_sync():
                with autocast:
                    losses = ddp_model(batch, stage=config.stage)
                (losses["loss"] / config.accum_grad).backward()
            for key, value in losses.items():
                summed[key] = summed.get(key, 0.0) + float(value.detach()) / config.accum_grad
            micro_step += 1
            utterances += len(batch.ids)
            if micro_step % config.accum_grad:
                continue
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen = context.mean(float(utterances)) * context.world_size  # all ranks together
            record = {"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                      "grad_norm": float(grad_norm), "utterances_per_second": seen / (time.time() - start)}
            record.update({k: context.mean(v) for k, v in summed.items()})
            summed = {}
            if context.is_main:
                _log_record(exp_dir, writer, record, step % config.log_every == 0 or step == 1)
            if step % config.checkpoint_every == 0:
                save_checkpoint()
            _after_step(step)
            if config.max_steps is not None and step >= config.max_steps:
                done = True
                break
        if not done:
            epoch += 1
            if valid_cuts is not None and context.is_main:
                valid = evaluate_loss(model, valid_cuts, config)
                record = {"step": step, "epoch": epoch, **{f"valid_{k}": v for k, v in valid.items()}}
                _log_record(exp_dir, writer, record, True)
                model.train()
        save_checkpoint()
    if dataset.image_failures:
        log.warning("%d picture(s) could not be read; their utterances trained without a picture (first: %s)",
                    len(dataset.image_failures), next(iter(dataset.image_failures.values())))
    if context.is_main:
        model.save_pretrained(exp_dir / "model")
        plot_training_curves(exp_dir / LOG_FILE, exp_dir / "training_curves.png")
        if writer is not None:
            writer.close()
    context.barrier()
    return exp_dir / "model"


def _load_trainable(model: XASRModel, state: dict) -> None:
    named = dict(model.named_parameters())
    missing = sorted(set(state["trainable"]) - set(named))
    if missing:
        raise ValueError(f"the checkpoint holds {len(missing)} parameter(s) this model lacks (first: {missing[0]}): "
                         "build it with the config (and --set overrides, e.g. model.llm.lora_rank) of the run")
    with torch.no_grad():
        for name, value in state["trainable"].items():
            named[name].copy_(value)


def export_checkpoint(model: XASRModel, exp_dir: Path | str, output_dir: Path | str) -> dict:
    """Save `model` with the trained weights of `exp_dir`'s latest checkpoint as a model directory.

    `model` must be built as the run built it (same config, same --init-from): the checkpoint holds only
    the trainable parameters. Returns the checkpoint's stage, epoch and step.
    """
    checkpoint_path = Path(exp_dir) / CHECKPOINT
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"{checkpoint_path}: no checkpoint to export (has the run saved one yet?)")
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    _load_trainable(model, state)
    model.save_pretrained(output_dir)
    return {"stage": state["stage"], "epoch": state["epoch"], "step": state["step"]}


@torch.no_grad()
def evaluate_loss(model: XASRModel, cuts: CutSet, config: TrainConfig) -> dict[str, float]:
    """Mean losses over `cuts` (weighted by utterances)."""
    from lhotse.dataset import SimpleCutSampler

    model.eval()
    device = next(model.adapter.parameters()).device
    sampler = SimpleCutSampler(cuts, max_duration=config.max_duration)
    dataset = SpeechTextDataset(pictures=picture_reader(model))
    totals: dict[str, float] = {}
    count = 0
    for cut_batch in sampler:
        batch = dataset[cut_batch].to(device)
        losses = model(batch, stage=config.stage)
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(batch.ids)
        count += len(batch.ids)
    return {k: v / max(count, 1) for k, v in totals.items()}


def _sampler(cuts: CutSet, config: TrainConfig, rank: int = 0, world_size: int = 1) -> DynamicBucketingSampler:
    return DynamicBucketingSampler(
        cuts, max_duration=config.max_duration, shuffle=True,
        num_buckets=max(2, min(config.num_buckets, len(cuts) // 2)), seed=config.seed, rank=rank,
        world_size=world_size, drop_last=config.drop_last, sync_buckets=config.sync_buckets)


def _count_total_steps(cuts: CutSet, config: TrainConfig, world_size: int) -> int:
    """Optimiser steps of the run, for the learning-rate schedule: the batches of one epoch of the global
    sequence, counted (bucketing leaves most batches below max_duration, so seconds / max_duration
    undercounts), shared by the processes and accumulated, times the epochs."""
    batches = sum(1 for _ in _sampler(cuts, config))
    return max(1, batches // (world_size * config.accum_grad)) * config.num_epochs


def _summary_writer(exp_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the JSONL log and PNG curves remain
        log.warning("tensorboard is not installed: no event files (pip install tensorboard)")
        return None
    return SummaryWriter(str(exp_dir / "tensorboard"))


def _truncate_log(log_file: Path, step: int) -> None:
    """Drop records written after the checkpoint we resume from (they will be written again)."""
    if log_file.is_file():
        kept = [line for line in log_file.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        log_file.write_text("".join(line + "\n" for line in kept))


def _log_record(exp_dir: Path, writer, record: dict, echo: bool) -> None:
    with open(exp_dir / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if writer is not None:
        for key, value in record.items():
            if key not in ("step", "epoch"):
                writer.add_scalar(key, value, record["step"])
    if echo:
        log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))


def plot_training_curves(log_file: Path, png: Path) -> Optional[Path]:
    """Loss components (and validation losses) against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not log_file.is_file():
        return None
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    keys = sorted({k for r in records for k in r if (k == "loss" or k.startswith("valid_") or k in
                   ("quantity", "token", "llm", "ctc", "image_lm")) and "accuracy" not in k})
    accuracy_keys = sorted({k for r in records for k in r if k.endswith("token_accuracy")})
    rows = 3 if accuracy_keys else 2
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2 + 2 * rows), sharex=True, height_ratios=[3, 1, 2][:rows])
    ax_loss, ax_lr = axes[0], axes[1]
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r]
        ax_loss.plot(*zip(*points), marker="o" if key.startswith("valid_") else None, label=key)
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    lr = [(r["step"], r["lr"]) for r in records if "lr" in r]
    if lr:
        ax_lr.plot(*zip(*lr))
    ax_lr.set_ylabel("learning rate")
    if accuracy_keys:  # how often a CIF vector's argmax through the output embedding is its token
        for key in accuracy_keys:
            points = [(r["step"], r[key]) for r in records if key in r]
            axes[2].plot(*zip(*points), marker="o" if key.startswith("valid_") else None, label=key)
        axes[2].set_ylabel("token accuracy")
        axes[2].set_ylim(0, 1)
        axes[2].legend()
        axes[2].grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


