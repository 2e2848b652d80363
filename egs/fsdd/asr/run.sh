#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset, real spoken digits): Whisper tiny.en encoder (packaged weights),
# C-Former, frozen SmolLM2-135M-Instruct. Runs end to end on a 2-core CPU in under 20 minutes.
#
#   ./run.sh                                    # all stages (see ../../../recipes/README.md)
#   ./run.sh --asr-config conf/projector.yaml   # frame-stacking baseline (no X2L conversion stage)
#   ./run.sh --stage 5 --stop-stage 6           # decode and score again
#   ./run.sh --help                             # this recipe's options, then recipes/asr.sh's
#
# Relative paths given as options are relative to this folder.
set -euo pipefail
_cmdline=$(printf '%q ' ./run.sh "$@")
cd "$(dirname "${BASH_SOURCE[0]}")"

fsdd_dir=../../../../shared/data/fsdd    # FSDD folder (recordings/<digit>_<speaker>_<take>.wav)

parse_options_forward=true  # other options go to recipes/asr.sh
. ../../../recipes/parse_options.sh

exec ../../../recipes/asr.sh \
  --corpus fsdd \
  --prepare-cmd "xasr prepare fsdd $(printf %q "${fsdd_dir}")" \
  --train-set fsdd_train \
  --test-sets fsdd_test \
  --asr-config conf/cformer.yaml \
  --run-cmd "${_cmdline% }" \
  "${forwarded_options[@]}"
