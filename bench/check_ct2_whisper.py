"""Check xasr's CTranslate2 -> transformers Whisper import against CTranslate2 itself.

Loads a packaged Whisper through xasr.hub and through faster-whisper (a bench-only dependency:
pip install faster-whisper) and compares, on one real clip:
  (a) the encoder output for the same 30 s padded log-mel features (max abs diff, cosine);
  (b) greedy transcripts: HF generate vs faster-whisper transcribe(beam_size=1, no timestamps).

    python bench/check_ct2_whisper.py [--source whisper-tiny.en] [--audio path.flac]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from xasr import hub

DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared/data/real_en_dev/audio/LJ001-0001.flac"


def read_audio(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = torch.from_numpy(audio.mean(axis=1))
    return torchaudio.functional.resample(audio, rate, 16000).numpy()


def faster_whisper_dir(resolved: hub.ResolvedSource, tmp: Path) -> Path:
    """faster-whisper wants one model.bin: join split parts in a temp dir (bench only)."""
    if len(resolved.files) == 1:
        return resolved.path
    for item in resolved.path.iterdir():
        if item.is_file() and not item.name.startswith("model.bin"):
            shutil.copy2(item, tmp / item.name)
    with open(tmp / "model.bin", "wb") as out:
        for part in resolved.files:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="whisper-tiny.en", help="a CTranslate2 Whisper source")
    parser.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from faster_whisper import WhisperModel
    from transformers import WhisperProcessor

    torch.set_num_threads(args.threads)
    resolved = hub.resolve(args.source)
    if resolved.kind != "ct2":
        raise SystemExit(f"{args.source} is a {resolved.kind} model: pass a CTranslate2 Whisper source")
    audio = read_audio(args.audio)
    print(f"source {args.source} ({resolved.path}), audio {args.audio} ({len(audio) / 16000:.2f} s)")

    start = time.perf_counter()
    model = hub.load_whisper(args.source)
    processor = WhisperProcessor.from_pretrained(hub.whisper_dir(args.source))
    print(f"xasr load: {time.perf_counter() - start:.2f} s")
    multilingual = model.generation_config.is_multilingual
    language = {"language": "en"} if multilingual else {}

    with tempfile.TemporaryDirectory() as tmp:
        fw = WhisperModel(str(faster_whisper_dir(resolved, Path(tmp))), device="cpu",
                          compute_type="float32", cpu_threads=args.threads)
        compare(model, processor, fw, audio, language)


def compare(model, processor, fw, audio: np.ndarray, language: dict) -> None:
    import ctranslate2

    # (a) encoder outputs on the same features
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features  # (1, mels, 3000)
    padded = np.pad(audio, (0, max(0, 30 * 16000 - len(audio))))[: 30 * 16000]
    fw_features = fw.feature_extractor(padded)[:, : features.shape[-1]]
    print(f"log-mel of the 30 s padded audio, HF vs faster-whisper extractor: max abs diff "
          f"{np.abs(features[0].numpy() - fw_features).max():.3g} (both encoders get the HF features)")
    with torch.no_grad():
        hf_out = model.model.encoder(features).last_hidden_state[0].numpy()
    ct2_out = np.array(fw.model.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True))[0]
    hf_out, ct2_out = hf_out.astype(np.float64), ct2_out.astype(np.float64)
    diff = np.abs(hf_out - ct2_out)
    cosine = float(np.dot(hf_out.ravel(), ct2_out.ravel())
                   / (np.linalg.norm(hf_out) * np.linalg.norm(ct2_out)))
    norms = np.linalg.norm(hf_out, axis=-1) * np.linalg.norm(ct2_out, axis=-1)
    frame_cos = (hf_out * ct2_out).sum(-1) / norms
    print(f"encoder output {hf_out.shape}: max abs diff {diff.max():.3g}, mean abs diff {diff.mean():.3g}, "
          f"max |value| {np.abs(ct2_out).max():.3g}, cosine {cosine:.10f} (1 - cosine {1 - cosine:.2g}; "
          f"lowest per frame {frame_cos.min():.10f})")

    # (b) greedy transcripts
    start = time.perf_counter()
    with torch.no_grad():
        ids = model.generate(features, num_beams=1, do_sample=False, **language)
    hf_text = processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
    hf_time = time.perf_counter() - start
    start = time.perf_counter()
    segments, _ = fw.transcribe(audio, beam_size=1, without_timestamps=True, temperature=0.0,
                                condition_on_previous_text=False, vad_filter=False, **language)
    fw_text = "".join(segment.text for segment in segments).strip()
    fw_time = time.perf_counter() - start
    print(f"HF generate     ({hf_time:.2f} s): {hf_text}")
    print(f"faster-whisper  ({fw_time:.2f} s): {fw_text}")
    print("transcripts identical" if hf_text == fw_text else "transcripts DIFFER")


if __name__ == "__main__":
    main()
