"""xasr decode vs faster-whisper on the same files, in the same run: WER, RTF, speed ratio, peak RSS.

Every system decodes every set in its own subprocess (so peak RSS is its own), one after another
(never two at once), with the same number of CPU threads. Times exclude loading the model, which is
reported separately. faster-whisper runs the packaged CTranslate2 models (whisper-tiny.en,
whisper-base) with its defaults (beam 5, no VAD) and `compute_type` int8, its usual CPU setting;
it is a bench-only dependency: `pip install faster-whisper`.

    python bench/decode_vs_faster_whisper.py [--model EXP/align/model] \\
        --set real_en_dev=../shared/data/real_en_dev --set fsdd_test=data/fsdd_cuts_test.jsonl.gz \\
        --long-form-minutes 10 [--systems xasr xasr-int8 xasr-cif fw-tiny.en fw-base] [--threads 2]

`xasr` and `xasr-int8` decode with the model's own search, `xasr-cif` with the token head alone.
A set is a folder with transcripts.tsv (path<TAB>speaker<TAB>text) or a lhotse cuts manifest.
`--long-form-minutes M` adds one M-minute file of espeak-ng sentences with pauses (bench/vad_longform.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
SYSTEMS = ("xasr", "xasr-int8", "xasr-cif", "fw-tiny.en", "fw-base")


def load_set(spec: str) -> tuple[str, list[dict]]:
    """NAME=PATH -> (name, [{id, path, text}]) from a transcripts.tsv folder or a cuts manifest."""
    name, _, path = spec.partition("=")
    path = Path(path)
    items = []
    if path.is_dir():
        for line in (path / "transcripts.tsv").read_text().splitlines():
            if line.strip():
                rel, _, text = line.split("\t", 2)
                items.append({"id": Path(rel).stem, "path": str(path / rel), "text": text})
    else:
        from lhotse import CutSet

        for cut in CutSet.from_file(path):
            items.append({"id": cut.id, "path": cut.recording.sources[0].source,
                          "text": " ".join(s.text for s in cut.supervisions)})
    if not items:
        raise SystemExit(f"{spec}: no utterances")
    return name, items


def long_form_set(minutes: float, directory: Path) -> tuple[str, list[dict]]:
    sys.path.insert(0, str(HERE))
    from vad_longform import build

    path = directory / f"long_form_{minutes:g}min.wav"
    spoken = build(path, minutes)
    return f"long_form_{minutes:g}min", [{"id": path.stem, "path": str(path),
                                          "text": " ".join(text for _, _, text in spoken)}]


# ---- one system on one set, in a subprocess -----------------------------------------------------
def run_worker(args: argparse.Namespace) -> None:
    items = json.loads(Path(args.files).read_text())
    start = time.perf_counter()
    if args.worker.startswith("xasr"):
        import torch

        import xasr

        torch.set_num_threads(args.threads)
        model = xasr.load_model(args.model or None, int8=args.worker == "xasr-int8")
        loaded = time.perf_counter()
        search = "cif" if args.worker == "xasr-cif" else None  # None: the model's own search
        transcripts = list(xasr.transcribe(model, [item["path"] for item in items], progress=False, search=search))
        hyps = {item["id"]: t.text for item, t in zip(items, transcripts)}
        errors = [t.error for t in transcripts if t.error]
    else:
        from faster_whisper import WhisperModel

        from xasr import hub

        sys.path.insert(0, str(HERE))
        from check_ct2_whisper import faster_whisper_dir

        tmp = tempfile.TemporaryDirectory()
        source = {"fw-tiny.en": "whisper-tiny.en", "fw-base": "whisper-base"}[args.worker]
        fw = WhisperModel(str(faster_whisper_dir(hub.resolve(source), Path(tmp.name))), device="cpu",
                          compute_type=args.compute_type, cpu_threads=args.threads)
        loaded = time.perf_counter()
        hyps, errors = {}, []
        for item in items:
            segments, _ = fw.transcribe(item["path"], beam_size=args.fw_beam, language="en")
            hyps[item["id"]] = " ".join(s.text.strip() for s in segments)
    done = time.perf_counter()
    Path(args.out).write_text(json.dumps({
        "load_seconds": loaded - start, "decode_seconds": done - loaded, "hyps": hyps, "errors": errors,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_system(system: str, items: list[dict], args: argparse.Namespace, tmp: Path) -> dict:
    files, out = tmp / "files.json", tmp / "result.json"
    files.write_text(json.dumps(items))
    out.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--worker", system, "--files", str(files), "--out", str(out),
               "--threads", str(args.threads), "--compute-type", args.compute_type, "--fw-beam", str(args.fw_beam)]
    if args.model:
        command += ["--model", str(args.model)]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="xasr model: directory, packaged name or hub id (default: default-en)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--long-form-minutes", type=float, default=0.0)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compute-type", default="int8", help="faster-whisper compute_type")
    parser.add_argument("--fw-beam", type=int, default=5, help="faster-whisper beam size (its default: 5)")
    parser.add_argument("--json", type=Path, help="also write all figures and hypotheses here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)

    from xasr.score import score

    rows, report = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = [load_set(spec) for spec in args.sets]
        if args.long_form_minutes:
            sets.append(long_form_set(args.long_form_minutes, tmp))
        for name, items in sets:
            audio_seconds = sum(sf.info(item["path"]).duration for item in items)
            print(f"{name}: {len(items)} files, {audio_seconds:.1f} s of audio", file=sys.stderr, flush=True)
            refs = {item["id"]: item["text"] for item in items}
            for system in args.systems:
                result = run_system(system, items, args, tmp)
                wer = score(refs, result["hyps"], level="word", normalizer="english").totals
                row = {"set": name, "system": system, "files": len(items), "audio_seconds": audio_seconds,
                       "load_seconds": result["load_seconds"], "decode_seconds": result["decode_seconds"],
                       "rtf": result["decode_seconds"] / audio_seconds, "wer": wer.error_rate,
                       "peak_rss_mib": result["peak_rss_mib"], "errors": result["errors"]}
                rows.append(row)
                report.setdefault(name, {})[system] = {**row, "hyps": result["hyps"]}
                print(f"  {system}: WER {row['wer']:.2f}%  RTF {row['rtf']:.4f}  "
                      f"peak RSS {row['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)

    print(f"\n{args.threads} CPU threads; faster-whisper compute_type {args.compute_type}, beam {args.fw_beam}; "
          f"xasr model {args.model or 'default-en (packaged)'}\n")
    print("| set | system | files | audio s | load s | decode s | RTF | WER % | peak RSS MiB | speed vs xasr |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        base = next((r for r in rows if r["set"] == row["set"] and r["system"] == "xasr"), None)
        ratio = f"{base['decode_seconds'] / row['decode_seconds']:.2f}x" if base else ""
        print(f"| {row['set']} | {row['system']} | {row['files']} | {row['audio_seconds']:.1f} "
              f"| {row['load_seconds']:.1f} | {row['decode_seconds']:.1f} | {row['rtf']:.4f} | {row['wer']:.2f} "
              f"| {row['peak_rss_mib']:.0f} | {ratio} |")
    print("\n'speed vs xasr': xasr's decode seconds / this system's (above 1: this system is faster).")
    failed = [f"{r['set']}/{r['system']}: {e}" for r in rows for e in r["errors"]]
    for line in failed:
        print(f"error: {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
