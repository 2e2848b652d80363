"""Word timestamps against known boundaries: real clips concatenated with known pauses.

Takes utterances from a lhotse cuts manifest (e.g. FSDD's test split, one spoken digit per clip),
joins `--per-file` of them into one file with random pauses (`--pause MIN MAX` seconds) between,
and decodes the files with `xasr`. Each clip's true span is where it sits in the file, trimmed to
its voiced part (samples within 40 dB of the clip's peak). Hypothesis words are aligned to the
reference words; for every clip whose words were all recognised, the first word's start and the last
word's end are compared with the clip's span.

    python bench/timestamps_concat.py --model EXP/align/model --cuts data/fsdd_cuts_test.jsonl.gz \\
        [--files 20] [--per-file 6] [--pause 0.6 1.5] [--vad auto always]

Prints, per VAD mode: clips matched, mean and median absolute start/end error, and the share of
boundaries within 0.1 / 0.2 / 0.3 s.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from kaldialign import align
from lhotse import CutSet

SAMPLE_RATE = 16000


def voiced_span(samples: np.ndarray, floor_db: float = 40.0) -> tuple[int, int]:
    """First and last sample within `floor_db` of the clip's peak."""
    level = np.abs(samples)
    loud = np.flatnonzero(level >= level.max() * 10 ** (-floor_db / 20))
    return int(loud[0]), int(loud[-1]) + 1


def build_files(cuts: CutSet, directory: Path, files: int, per_file: int, pause: tuple[float, float],
                seed: int) -> list[tuple[Path, list[tuple[float, float, str]]]]:
    """Write the concatenated files; returns each file's (start, end, text) clips in file seconds."""
    rng = np.random.default_rng(seed)
    pool = [cut for cut in cuts if cut.supervisions and cut.supervisions[0].text.strip()]
    order = rng.permutation(len(pool))[: files * per_file]
    if len(order) < files * per_file:
        raise SystemExit(f"only {len(pool)} clips: ask for fewer --files or --per-file")
    built = []
    for f in range(files):
        pieces, clips, position = [], [], 0
        for index in order[f * per_file: (f + 1) * per_file]:
            cut = pool[index]
            silence = np.zeros(int(rng.uniform(*pause) * SAMPLE_RATE), np.float32)
            samples = cut.resample(SAMPLE_RATE).load_audio()[0].astype(np.float32)
            start, end = voiced_span(samples)
            position += len(silence)
            clips.append(((position + start) / SAMPLE_RATE, (position + end) / SAMPLE_RATE,
                          " ".join(s.text for s in cut.supervisions)))
            pieces += [silence, samples]
            position += len(samples)
        pieces.append(np.zeros(int(pause[0] * SAMPLE_RATE), np.float32))
        path = directory / f"concat_{f:03d}.wav"
        sf.write(str(path), np.concatenate(pieces), SAMPLE_RATE)
        built.append((path, clips))
    return built


def boundary_errors(clips: list[tuple[float, float, str]], words) -> tuple[list[float], list[float], int]:
    """Start and end errors (hyp - true, seconds) of the clips whose words were all recognised."""
    from xasr.text import get_normalizer

    normalize = get_normalizer("english")
    ref = [(c, w) for c, (_, _, text) in enumerate(clips) for w in normalize(text).split()]
    hyp = [(w, word) for word in words for w in normalize(word.word).split()]
    pairs = align([w for _, w in ref], [w for w, _ in hyp], "*")
    matched: dict[int, list] = {}
    wrong: set[int] = set()
    r = h = 0
    for ref_word, hyp_word in pairs:
        clip = ref[r][0] if ref_word != "*" else None
        if ref_word != "*" and hyp_word != "*" and ref_word == hyp_word:
            matched.setdefault(clip, []).append(hyp[h][1])
        elif clip is not None:
            wrong.add(clip)
        r += ref_word != "*"
        h += hyp_word != "*"
    starts, ends = [], []
    for c, timed in matched.items():
        if c not in wrong:
            starts.append(timed[0].start - clips[c][0])
            ends.append(timed[-1].end - clips[c][1])
    return starts, ends, len(clips)


def summary(errors: list[float]) -> str:
    if not errors:
        return "n/a"
    a = np.abs(errors)
    return (f"mean |err| {a.mean():.3f} s, median {np.median(a):.3f} s, mean signed {np.mean(errors):+.3f} s, "
            f"within 0.1/0.2/0.3 s: {np.mean(a <= 0.1):.0%} / {np.mean(a <= 0.2):.0%} / {np.mean(a <= 0.3):.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--cuts", type=Path, required=True, help="lhotse cuts manifest with supervisions")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--per-file", type=int, default=6)
    parser.add_argument("--pause", type=float, nargs=2, default=(0.6, 1.5), metavar=("MIN", "MAX"))
    parser.add_argument("--vad", nargs="+", default=["auto", "always"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import xasr

    model = xasr.load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        built = build_files(CutSet.from_file(args.cuts), Path(tmp), args.files, args.per_file, tuple(args.pause),
                            args.seed)
        print(f"{args.files} files of {args.per_file} clips, pauses {args.pause[0]}-{args.pause[1]} s; "
              f"model {args.model}")
        for vad in args.vad:
            transcripts = list(xasr.transcribe(model, [path for path, _ in built], vad=vad, progress=False))
            starts, ends, total = [], [], 0
            for (_, clips), transcript in zip(built, transcripts):
                s, e, n = boundary_errors(clips, transcript.words)
                starts, ends, total = starts + s, ends + e, total + n
            print(f"\nvad={vad}: {len(starts)} of {total} clips recognised with all their words")
            print(f"  start: {summary(starts)}")
            print(f"  end:   {summary(ends)}")


if __name__ == "__main__":
    main()
