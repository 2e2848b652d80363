#!/usr/bin/env python3
"""Small helpers for recipes/asr.sh that need Python but not torch (each call takes well under a second).

    recipe_utils.py config-info CONFIG      shell assignments: adapter, encoder_frozen, encoder_tag
    recipe_utils.py requirements EXTRAS     exit 0 when xasr and its requirements (+ extras) are installed
    recipe_utils.py results ...             write RESULTS.md from the scorer's reports (stage 6)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "lhotse", "xasr")


# ---- config-info ----------------------------------------------------------------------------------

def config_info(path: Path) -> dict[str, str]:
    """What asr.sh needs to know about a recipe YAML, read by xasr's own config module (the source
    tree's: it is torch-free and works before xasr is installed), without building anything."""
    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from xasr.config import encoder_tag, load_config_file

    model, _ = load_config_file(path, "convert")
    written = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
    return {
        "adapter": model.adapter,
        "encoder_frozen": "true" if model.encoder.frozen else "false",
        "encoder_tag": encoder_tag(written.get("encoder") or {}),
    }


# ---- requirements ---------------------------------------------------------------------------------

def missing_requirements(extras: list[str]) -> list[str]:
    """Requirements of the installed xasr distribution (with `extras`) that are not satisfied."""
    from packaging.requirements import Requirement

    try:
        dist = metadata.distribution("xasr")
    except metadata.PackageNotFoundError:
        return ["xasr"]
    missing = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in [""] + extras):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            missing.append(f"{req} (found {version})")
    return missing


# ---- results --------------------------------------------------------------------------------------

def read_marker(path: Path) -> dict[str, str]:
    """A stage's .done file: `key: value` lines written by asr.sh."""
    fields = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                fields[key] = value
    return fields


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def git_revision(repo: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()

    try:
        revision = git("rev-parse", "--short", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        dirty = False
    return f"{revision} (with uncommitted changes)" if dirty else revision


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    gpu = "no GPU"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        if out.returncode == 0 and names:
            gpu = f"{len(names)} GPU(s): " + "; ".join(sorted(set(names)))
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{cpu}, {cores} cores{memory}, {gpu}"


def training_summary(stage_dir: Path) -> str | None:
    log = stage_dir / "log.jsonl"
    if not log.is_file():
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r]
    if not steps:
        return None
    first, last = steps[0], steps[-1]
    tail = steps[-10:]
    mean = sum(r["loss"] for r in tail) / len(tail)
    cells = [stage_dir.name, str(last["step"]), str(last.get("epoch", 0) + 1), f"{first['loss']:.3f}",
             f"{mean:.3f}", f"{last.get('utterances_per_second', float('nan')):.1f}"]
    valid = [r for r in records if "valid_loss" in r]
    cells.append(f"{valid[-1]['valid_loss']:.3f}" if valid else "-")
    return "|" + "|".join(cells) + "|"


def read_scores(decode_dir: Path, test_set: str, suffix: str) -> dict:
    """The scores `xasr score` / `xasr decode --ref` wrote for a set (scores-SET-SUFFIX.json)."""
    path = decode_dir / f"scores-{test_set}-{suffix}.json"
    if not path.is_file():
        raise ValueError(f"{path}: no scores (run stage 6 again: it scores what stage 5 decoded)")
    return json.loads(path.read_text(encoding="utf-8"))


def fmt_seconds(value: str | None) -> str:
    if not value:
        return "-"
    seconds = int(float(value))
    return f"{seconds} s" if seconds < 600 else f"{seconds / 60:.0f} min"


def write_results(args: argparse.Namespace) -> Path:
    exp = Path(args.asr_exp)
    recipe_dir = Path.cwd()
    try:
        where = recipe_dir.resolve().relative_to(Path(args.repo).resolve())
    except ValueError:
        where = recipe_dir
    markers = [(label, read_marker(Path(path))) for label, _, path in (m.partition("=") for m in args.marker)]
    out = [f"# {args.corpus}: {args.tag}", "",
           f"Written by `recipes/asr.sh` (stage 6) on {datetime.now():%Y-%m-%d %H:%M:%S}.", "",
           "## Environment", "",
           f"- git revision: {git_revision(Path(args.repo))}",
           f"- python {platform.python_version()}; {versions()}",
           f"- machine: {machine()}",
           f"- config: `{args.config}` (copied below); model: `{args.model}`", "",
           "## Commands", "", "```bash", f"cd {where}"]
    commands = []
    for _, fields in markers:
        if fields.get("run") and fields["run"] not in commands:
            commands.append(fields["run"])
    if args.run_cmd and args.run_cmd not in commands:
        commands.append(args.run_cmd)
    out += commands + ["```", "", "|stage|what it ran|finished|wall|", "|---|---|---|---|"]
    for label, fields in markers:
        if fields:
            command = fields.get("command", "").replace("|", "\\|")
            out.append(f"|{label}|`{command}`|{fields.get('date', '-')}|{fmt_seconds(fields.get('seconds'))}|")

    rows = [r for r in (training_summary(exp / name) for name in ("convert", "align", "integrate")) if r]
    if rows:
        out += ["", "## Training", "",
                "|stage|steps|epochs|first loss|last loss (mean of 10)|utt/s|valid loss|",
                "|---|---|---|---|---|---|---|", *rows]

    tables: dict[str, tuple[str, list[str]]] = {}
    summary: dict[str, str] = {}
    for test_set in args.test_sets:
        scores = read_scores(Path(args.decode_dir) / test_set, test_set, args.suffix)
        tables.setdefault(scores["metric"], (scores["table_header"], []))[1].append(scores["table_row"])
        summary[test_set] = str(scores["error_rate"])
    metrics = "/".join(tables) or "WER"
    out += ["", f"## {metrics}", "",
            "|" + "|".join(["settings", *args.test_sets, "comment"]) + "|",
            "|" + "|".join(["---"] * (len(args.test_sets) + 2)) + "|",
            "|" + "|".join([args.suffix, *(summary[s] for s in args.test_sets), args.comment or "-"]) + "|"]
    for metric, (header, table_rows) in tables.items():
        out += ["", f"### {metric}", "", header, *table_rows]  # the header holds its |---| line
    config_text = Path(args.config).read_text(encoding="utf-8").rstrip("\n") if Path(args.config).is_file() else ""
    out += ["", f"<details><summary>{args.config}</summary>", "", "```yaml", config_text, "```", "", "</details>", ""]

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(out), encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("config-info")
    p.add_argument("config", type=Path)
    p = sub.add_parser("requirements")
    p.add_argument("extras", nargs="?", default="")
    p = sub.add_parser("results")
    p.add_argument("--output", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--suffix", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--asr-exp", required=True)
    p.add_argument("--decode-dir", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--test-sets", nargs="+", required=True)
    p.add_argument("--marker", action="append", default=[], help="LABEL=PATH of a stage's .done file")
    p.add_argument("--run-cmd", default="")
    p.add_argument("--comment", default="")
    args = parser.parse_args(argv)

    if args.command == "config-info":
        if not args.config.is_file():
            print(f"error: {args.config}: no such config file", file=sys.stderr)
            return 1
        try:
            info = config_info(args.config)
        except (ValueError, TypeError) as e:
            print(f"error: {args.config}: {e}", file=sys.stderr)
            return 1
        for key, value in info.items():
            print(f"{key}={shlex.quote(value)}")
    elif args.command == "requirements":
        missing = missing_requirements([e.strip() for e in args.extras.split(",") if e.strip()])
        for item in missing:
            print(f"missing: {item}")
        return 1 if missing else 0
    else:
        try:
            print(f"wrote {write_results(args)}")
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
