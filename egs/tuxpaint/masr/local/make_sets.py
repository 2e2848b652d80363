#!/usr/bin/env python3
"""The tuxpaint/masr data sets, from what local/prepare.sh wrote into DATA_DIR:

training (DATA_DIR/masr_cuts_train.jsonl.gz, set masr_train): every synthetic caption with its stamp's picture or, for a
  seeded half, its clip (CLIPS_DIR); one degraded copy of each (noise at 10, 5 or 0 dB, or a
  noise burst over ~35% of the speech, or both), also shown the stamp; the general sentences
  speech-only (no picture), so speech-only accuracy is trained too. DATA_DIR/masrpicture_cuts_train.jsonl.gz:
  each stamp's caption once with its picture and once with its clip, for the Q-Former's picture-caption pass.
test (DATA_DIR/tux<condition>_cuts_<visual>.jsonl.gz, sets tux<condition>_<visual>): the 65 real
  recordings in each condition (clean, snr10, snr5, snr0, masked) x what they are shown: none,
  image (their own stamp), wrong (a different stamp's picture, drawn per recording, the same in
  every condition), video (their stamp's clip), wrongvideo (the wrong stamp's clip).
"""

import argparse
import copy
import random
from pathlib import Path

from lhotse import CutSet

from xasr.augment import degrade_cuts
from xasr.data.dataset import IMAGE_FIELD, VIDEO_FIELD
from xasr.data.tuxpaint import read_stamps

CONDITIONS = {"clean": (None, 0.0), "snr10": (10.0, 0.0), "snr5": (5.0, 0.0), "snr0": (0.0, 0.0),
              "masked": (None, 0.35)}
VISUALS = ("none", "image", "wrong", "video", "wrongvideo")
TRAIN_DEGRADED = [(10.0, 0.0), (5.0, 0.0), (0.0, 0.0), (None, 0.35), (10.0, 0.35)]


def show(cut, field, path):
    """The cut shown `path` as its picture or clip (`field`), or nothing (None)."""
    supervision = cut.supervisions[0]
    custom = {k: v for k, v in (supervision.custom or {}).items() if k not in (IMAGE_FIELD, VIDEO_FIELD)}
    if path is not None:
        custom[field] = str(path)
    supervision.custom = custom
    return cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("clips_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.data_dir
    stamps = {s.id: s for s in read_stamps()}
    clip_of = {s: (args.clips_dir / s).resolve() for s in stamps}

    def stamp_of(cut):
        supervision = cut.supervisions[0]
        return (supervision.custom or {}).get("sentence_id", cut.id)

    # training
    captions = CutSet.from_file(data / "captions" / "tts_cuts_train.jsonl.gz").to_eager()
    shown = []
    for cut in captions:
        stamp = stamp_of(cut)
        use_clip = random.Random(f"{args.seed}-clip-{cut.id}").random() < 0.5
        shown.append(show(cut, VIDEO_FIELD if use_clip else IMAGE_FIELD,
                          clip_of[stamp] if use_clip else stamps[stamp].image))
    shown = CutSet.from_cuts(shown)
    groups = {i: [] for i in range(len(TRAIN_DEGRADED))}
    for cut in shown:
        groups[random.Random(f"{args.seed}-degrade-{cut.id}").randrange(len(TRAIN_DEGRADED))].append(cut)
    degraded = []
    for i, (snr, mask) in enumerate(TRAIN_DEGRADED):
        degraded += list(degrade_cuts(CutSet.from_cuts(groups[i]), data / "degraded" / f"train{i}", snr, mask,
                                      seed=args.seed, id_suffix=f"_deg{i}"))
    general = CutSet.from_file(data / "general" / "tts_cuts_train.jsonl.gz")
    train = shown + CutSet.from_cuts(degraded) + general
    train.to_file(data / "masr_cuts_train.jsonl.gz")
    # the Q-Former's picture-caption pass: each stamp once with its picture and once with its clip
    # (the audio is not read there; one synthetic cut of the caption carries the text)
    pairs, seen = [], set()
    for cut in captions:
        if stamp_of(cut) in seen:
            continue
        seen.add(stamp_of(cut))
        for field, path, suffix in ((IMAGE_FIELD, stamps[stamp_of(cut)].image, "_img"),
                                    (VIDEO_FIELD, clip_of[stamp_of(cut)], "_vid")):
            pair = show(copy.deepcopy(cut), field, path).with_id(cut.id + suffix)
            pairs.append(pair)
    CutSet.from_cuts(pairs).to_file(data / "masrpicture_cuts_train.jsonl.gz")
    print(f"train: {len(shown)} captions + {len(degraded)} degraded copies + {len(general)} speech-only")

    # test
    test = CutSet.from_file(data / "tuxpaint_cuts_test.jsonl.gz").to_eager()
    ids = sorted(stamps)
    wrong_stamp = {}  # a different stamp (another caption) per recording, the same in every condition
    for cut in test:
        rng = random.Random(f"{args.seed}-wrong-{cut.id}")
        wrong_stamp[cut.id] = rng.choice([s for s in ids if stamps[s].caption != stamps[cut.id].caption])
    for name, (snr, mask) in CONDITIONS.items():
        cuts = test if snr is None and mask == 0 else degrade_cuts(test, data / "degraded" / name, snr, mask,
                                                                 seed=args.seed + 1)
        for visual in VISUALS:
            def with_visual(cut, visual=visual):
                wrong = wrong_stamp[cut.id]
                field, path = {"none": (IMAGE_FIELD, None), "image": (IMAGE_FIELD, stamps[cut.id].image),
                               "wrong": (IMAGE_FIELD, stamps[wrong].image), "video": (VIDEO_FIELD, clip_of[cut.id]),
                               "wrongvideo": (VIDEO_FIELD, clip_of[wrong])}[visual]
                return show(cut, field, path)
            path = data / f"tux{name}_cuts_{visual}.jsonl.gz"
            CutSet.from_cuts(with_visual(c) for c in cuts.to_eager()).to_file(path)
    print(f"test: {len(test)} real captions x {len(CONDITIONS)} conditions x {len(VISUALS)} visual contexts in {data}")


if __name__ == "__main__":
    main()
