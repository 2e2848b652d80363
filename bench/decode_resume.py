"""What `xasr decode` keeps when it is killed, and what a second run into the same folder does.

1. decodes N files uninterrupted into OUT/full;
2. decodes them into OUT/killed, kills the process with SIGKILL once `--kill-at` of the inputs are
   in its `transcripts.jsonl.partial`, then runs the same command again: reports how many inputs the
   re-run decoded, its wall time, and whether every output equals the uninterrupted run's;
3. starts two decodes into OUT/concurrent at once: the second must refuse in one line (exit 2), and
   every file left in the folder must be whole.

    python bench/decode_resume.py --manifest data/tts_cuts_valid.jsonl.gz --limit 200 --out /tmp/resume \\
        [--model DIR] [--search cif] [--kill-at 0.7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def decode_command(files: list[str], out: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "xasr.cli", "decode", *files, "--output-dir", str(out), "--format", "jsonl,txt",
               "--no-progress", "--vad", "never"]
    command += ["--model", args.model] if args.model else []
    command += ["--search", args.search] if args.search else []
    return command


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def outputs(folder: Path) -> dict[str, str]:
    """Every transcript file's content, and each transcripts.jsonl line's id and text."""
    found = {p.name: p.read_text() for p in sorted(folder.glob("*.txt"))}
    found.update({f"jsonl:{r['id']}": r.get("text", "") for r in lines(folder / "transcripts.jsonl")})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True, help="cuts whose audio files to decode")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model")
    parser.add_argument("--search")
    parser.add_argument("--kill-at", type=float, default=0.7)
    args = parser.parse_args()

    from lhotse import CutSet

    from xasr.writers import LOCK_NAME

    files = sorted({c.recording.sources[0].source for c in CutSet.from_file(args.manifest)})[: args.limit]
    if args.out.exists():
        shutil.rmtree(args.out)

    start = time.perf_counter()
    subprocess.run(decode_command(files, args.out / "full", args), check=True, capture_output=True)
    full_wall = time.perf_counter() - start
    print(f"uninterrupted: {len(files)} inputs in {full_wall:.1f} s")

    killed = args.out / "killed"
    process = subprocess.Popen(decode_command(files, killed, args), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    partial = killed / ".transcripts.jsonl.partial"
    while process.poll() is None and len(lines(partial)) < args.kill_at * len(files):
        time.sleep(0.05)
    if process.poll() is not None:
        raise SystemExit("the decode finished before the kill point: give more inputs (pools are 64 inputs)")
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len(lines(partial))
    print(f"killed with SIGKILL: {kept} of {len(files)} inputs were in {partial.name}")
    start = time.perf_counter()
    rerun = subprocess.run(decode_command(files, killed, args), capture_output=True, text=True)
    rerun_wall = time.perf_counter() - start
    resumed = next((line for line in rerun.stderr.splitlines() if line.startswith("resuming")), "(no resume line)")
    decoded = len([line for line in rerun.stdout.splitlines() if "\t" in line])
    same = outputs(killed) == outputs(args.out / "full")
    print(f"re-run (exit {rerun.returncode}): {resumed}\n  decoded {decoded} inputs in {rerun_wall:.1f} s; "
          f"outputs identical to the uninterrupted run: {same}")

    concurrent = args.out / "concurrent"
    first = subprocess.Popen(decode_command(files, concurrent, args), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    while first.poll() is None and not (concurrent / LOCK_NAME).exists():  # the first holds the folder
        time.sleep(0.05)
    second = subprocess.run(decode_command(files[:5], concurrent, args), capture_output=True, text=True)
    first_stderr = first.communicate()[1]
    errors = [line for line in second.stderr.splitlines() if line.startswith("error")]
    whole = all(json.loads(line) is not None for line in (concurrent / "transcripts.jsonl").read_text().splitlines())
    print(f"concurrent: first exit {first.returncode}, second exit {second.returncode}: {errors}")
    print(f"  transcripts.jsonl lines: {len(lines(concurrent / 'transcripts.jsonl'))} (all valid JSON: {whole}); "
          f"same as the uninterrupted run: {outputs(concurrent) == outputs(args.out / 'full')}"
          + (f"; first run's stderr: {first_stderr.strip()[:200]}" if first.returncode else ""))


if __name__ == "__main__":
    main()
