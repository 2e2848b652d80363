"""The chat guard (GenerationOptions.min_draft_agreement) measured: WER and segments replaced by the
CIF draft per threshold, on real sets and a long-form file, with the LLM run once per segment.

    python bench/chat_guard.py [--model DIR] --set real_en_dev=../shared/data/real_en_dev \\
        --set pocketsphinx_test=data/pocketsphinx_cuts_test.jsonl.gz --long-form-minutes 10 \\
        [--thresholds 0 0.2 0.3 0.4 0.5 1.01]

A threshold of 0 is the plain LLM transcript, above 1 always the draft (the `cif` search).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import tempfile
from pathlib import Path

import jiwer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from decode_vs_faster_whisper import load_set, long_form_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory or packaged name (default: default-en)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--long-form-minutes", type=float, default=0.0)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.5, 1.01])
    args = parser.parse_args()

    import torch

    import xasr
    import xasr.decode
    from xasr.config import DecodeOptions
    from xasr.decode import as_inputs, transcribe
    from xasr.text import get_normalizer

    torch.set_num_threads(2)
    normalize = get_normalizer("english")
    model = xasr.load_model(args.model or None)
    raw: dict[str, list[dict]] = {}  # the unguarded outputs of each batch, by audio hash
    original = xasr.decode.generate
    counts = {"segments": 0, "replaced": 0}

    def guarded(model, batch, num_beams=1, context=None, options=None):
        key = hashlib.sha1(batch.waveforms.numpy().tobytes()).hexdigest()
        if key not in raw:
            raw[key] = original(model, batch, num_beams=num_beams, context=context,
                                options=dataclasses.replace(options, min_draft_agreement=1e-9))
        results = []
        for result in raw[key]:
            result = dict(result)
            counts["segments"] += 1
            if result.get("draft_agreement", 1.0) < threshold:
                counts["replaced"] += 1
                result["token_ids"] = result["draft_token_ids"]
                result["text"] = model.llm.template.decode(result["token_ids"])
            results.append(result)
        return results

    xasr.decode.generate = guarded
    sets = [load_set(spec) for spec in args.sets]
    tmp = tempfile.TemporaryDirectory()
    if args.long_form_minutes:
        sets.append(long_form_set(args.long_form_minutes, Path(tmp.name)))
    rows = []
    for threshold in args.thresholds:
        row = [f"{threshold:g}"]
        for name, items in sets:
            counts.update(segments=0, replaced=0)
            transcripts = transcribe(model, as_inputs([item["path"] for item in items]), DecodeOptions(),
                                     progress=False)
            hyps = [normalize(t.text) for t in transcripts]
            wer = jiwer.wer([normalize(item["text"]) for item in items], hyps)
            row.append(f"{100 * wer:.2f}% ({counts['replaced']}/{counts['segments']})")
        rows.append(row)
        print(" | ".join(row), flush=True)
    header = ["min_draft_agreement"] + [f"{name} WER (segments replaced)" for name, _ in sets]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
