"""Training stages on tiny models: losses go down, exact resume, 2-process gloo DDP equal to one
process with gradient accumulation, config files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

import xasr.train as train_module
from tests.test_model import tiny_model
from xasr.config import TrainConfig
from xasr.model import XASRModel
from xasr.train import export_checkpoint, train

WORDS = ["zero", "one", "two", "three", "four"]


def tiny_cuts(root: Path, n: int = 12) -> CutSet:
    rng = np.random.default_rng(0)
    recordings, supervisions = [], []
    for i in range(n):
        word = WORDS[i % len(WORDS)]
        seconds = 0.3 + 0.05 * (i % 4)
        t = np.arange(int(seconds * 16000)) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (200 + 60 * (i % len(WORDS))) * t) + 0.01 * rng.standard_normal(len(t))
        path = root / f"utt{i}.wav"
        sf.write(str(path), audio.astype(np.float32), 16000)
        recording = Recording.from_file(path, recording_id=f"utt{i}")
        recordings.append(recording)
        supervisions.append(SupervisionSegment(id=f"utt{i}", recording_id=f"utt{i}", start=0,
                                               duration=recording.duration, text=word))
    return CutSet.from_manifests(RecordingSet.from_recordings(recordings),
                                 SupervisionSet.from_segments(supervisions)).to_eager()


@pytest.fixture
def cuts(tmp_path):
    (tmp_path / "audio").mkdir()
    return tiny_cuts(tmp_path / "audio")


def read_log(exp_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "log.jsonl").read_text().splitlines()]


def config(**kwargs) -> TrainConfig:
    defaults = dict(stage=1, num_epochs=3, max_duration=1.5, lr=3e-3, warmup_steps=2, checkpoint_every=3,
                    log_every=100, seed=7)
    defaults.update(kwargs)
    return TrainConfig(**defaults)


def test_stage1_then_stage2_lower_the_loss(cuts, tmp_path):
    model = tiny_model()
    model_dir = train(model, cuts, tmp_path / "s1", config(num_epochs=6), valid_cuts=cuts)
    losses = [r["loss"] for r in read_log(tmp_path / "s1") if "loss" in r]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert (model_dir / "config.json").is_file()
    assert (tmp_path / "s1" / "training_curves.png").stat().st_size > 1000
    assert list((tmp_path / "s1" / "tensorboard").glob("events.*"))
    assert any("valid_loss" in r for r in read_log(tmp_path / "s1"))
    train(model, cuts, tmp_path / "s2", config(stage=2, num_epochs=2))
    assert all("llm" in r for r in read_log(tmp_path / "s2") if "loss" in r)


def test_resume_after_a_crash_repeats_the_same_losses(cuts, tmp_path, monkeypatch):
    """4 steps per epoch: the crash at step 3 resumes from the checkpoint at step 2, inside the epoch,
    where the sampler fast-forwards and dropout and masks must draw what they drew the first time."""
    reference = tiny_model()
    train(reference, cuts, tmp_path / "straight", config(checkpoint_every=2))
    expected = [r["loss"] for r in read_log(tmp_path / "straight")]
    assert [r["epoch"] for r in read_log(tmp_path / "straight")][:5] == [0, 0, 0, 0, 1]

    def crash(step):
        if step == 3:  # after the checkpoint at step 2: step 3 is lost and redone
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_after_step", crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), cuts, tmp_path / "crashed", config(checkpoint_every=2))
    monkeypatch.setattr(train_module, "_after_step", lambda step: None)
    restarted = tiny_model()
    with torch.no_grad():  # the resumed weights must come from the checkpoint, not the fresh model
        for p in restarted.adapter.parameters():
            p.add_(0.1)
    train(restarted, cuts, tmp_path / "crashed", config(checkpoint_every=2))
    resumed = [r["loss"] for r in read_log(tmp_path / "crashed")]
    assert [r["step"] for r in read_log(tmp_path / "crashed")] == list(range(1, len(expected) + 1))
    np.testing.assert_allclose(resumed, expected, rtol=1e-5, atol=1e-6)


def test_export_writes_the_latest_checkpoint_as_a_model(cuts, tmp_path):
    trained = tiny_model()
    train(trained, cuts, tmp_path / "run", config(num_epochs=1))
    fresh = tiny_model(seed=1)  # as a new process builds it: other weights until the checkpoint's are in
    assert export_checkpoint(fresh, tmp_path / "run", tmp_path / "exported") == {"stage": 1, "epoch": 1, "step": 4}
    exported = XASRModel.load(tmp_path / "exported", encoder=fresh.encoder, llm=fresh.llm)
    expected = trained.trainable_state_dict()
    assert expected.keys() == exported.trainable_state_dict().keys()
    for name, value in exported.trainable_state_dict().items():
        assert torch.equal(value, expected[name]), name
    with pytest.raises(FileNotFoundError, match="no checkpoint to export"):
        export_checkpoint(fresh, tmp_path / "nothing", tmp_path / "x")
    with pytest.raises(ValueError, match="parameter.* this model lacks"):
        export_checkpoint(tiny_model("projector"), tmp_path / "run", tmp_path / "x")


def test_stage_3_without_auxiliary_modality_is_a_clear_error(cuts, tmp_path):
    with pytest.raises(ValueError, match="no image or video adapter"):
        train(tiny_model(), cuts, tmp_path / "s3", config(stage=3))


DDP_SCRIPT = r"""
import json, os, sys
from pathlib import Path
import torch
sys.path.insert(0, sys.argv[1])
from lhotse import CutSet
from tests.test_model import tiny_model
from tests.test_train import config
from xasr.train import train
torch.set_num_threads(1)
for name, settings in json.loads(sys.argv[4]).items():  # one launch, several runs
    model = tiny_model(dropout=0.0)
    exp_dir = Path(sys.argv[3]) / name
    train(model, CutSet.from_file(sys.argv[2]), exp_dir, config(**settings))
    torch.save(model.adapter.state_dict(), exp_dir / f"adapter-rank{os.environ['RANK']}.pt")
"""


def test_two_process_gloo_ddp_equals_one_process_with_gradient_accumulation(tmp_path):
    """torchrun with 2 CPU processes (gloo) and accum_grad A (1 and 2) against one process with
    accum_grad 2A on the same cuts: the same optimiser steps, per-step losses (averaged over ranks),
    learning rates, gradient norms and final weights (identical on both ranks).

    Rank r takes every other batch of the global sequence, so a DDP step sees exactly the batches of
    one accumulated step; `sync_buckets: false` + `drop_last: true` make that sequence the same for
    1 and 2 processes. 16 cuts give 7 batches per epoch: an incomplete accumulation is dropped by both.
    """
    (tmp_path / "audio").mkdir()
    cuts = tiny_cuts(tmp_path / "audio", n=16)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    shared = dict(max_duration=1.0, sync_buckets=False, drop_last=True)
    runs = {f"accum{a}": dict(accum_grad=a, **shared) for a in (1, 2)}
    script = tmp_path / "run.py"
    script.write_text(DDP_SCRIPT)
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
         str(script), repo, str(tmp_path / "cuts.jsonl.gz"), str(tmp_path / "ddp"), json.dumps(runs)],
        env=env, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]

    initial = tiny_model(dropout=0.0).adapter.state_dict()
    for name, settings in runs.items():
        single_model = tiny_model(dropout=0.0)
        single_config = config(**{**settings, "accum_grad": 2 * settings["accum_grad"]})
        train(single_model, cuts, tmp_path / "single" / name, single_config)
        single = [r for r in read_log(tmp_path / "single" / name) if "loss" in r]
        ddp = [r for r in read_log(tmp_path / "ddp" / name) if "loss" in r]
        assert len(single) >= 3
        assert [(r["step"], r["epoch"]) for r in ddp] == [(r["step"], r["epoch"]) for r in single], name
        for key in ("loss", "quantity", "token", "lr", "grad_norm"):
            np.testing.assert_allclose([r[key] for r in ddp], [r[key] for r in single], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}: {key}")
        assert (tmp_path / "ddp" / name / "model" / "config.json").is_file()
        rank0 = torch.load(tmp_path / "ddp" / name / "adapter-rank0.pt")
        rank1 = torch.load(tmp_path / "ddp" / name / "adapter-rank1.pt")
        for key, expected in single_model.adapter.state_dict().items():
            torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0)
            got, expected = rank0[key].clone(), expected.clone()
            if key.endswith("attention.qkv.bias"):
                # the key bias has zero gradient in exact arithmetic (softmax ignores a shift shared by
                # all keys); Adam scales each run's rounding noise there to steps of up to ~lr
                keys = slice(len(got) // 3, 2 * len(got) // 3)
                torch.testing.assert_close(got[keys], expected[keys], rtol=0, atol=single_config.lr)
                got[keys] = expected[keys]
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name} {key}: {m}")
        assert any(not torch.equal(rank0[key], initial[key]) for key in rank0)


def test_the_schedule_counts_the_steps_the_run_takes(cuts, tmp_path):
    settings = config(num_epochs=2, max_duration=1.0)
    train(tiny_model(), cuts, tmp_path / "run", settings)
    taken = [r for r in read_log(tmp_path / "run") if "loss" in r][-1]["step"]
    counted = train_module._count_total_steps(cuts, settings, world_size=1)
    assert abs(counted - taken) <= settings.num_epochs  # epochs differ by a batch at most
    full_batches = sum(c.duration for c in cuts) / settings.max_duration * settings.num_epochs
    assert abs(counted - taken) < abs(full_batches - taken)  # what seconds / max_duration would give
