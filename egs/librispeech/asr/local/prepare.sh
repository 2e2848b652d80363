#!/usr/bin/env bash
# Stage 0 data of the LibriSpeech recipe (run.sh passes its options): lhotse manifests in DATA_DIR,
#   librispeech_{recordings,supervisions,cuts}_<part>.jsonl.gz   every part of TRAIN_PARTS and TEST_PARTS
#   librispeech_cuts_train.jsonl.gz                              TRAIN_PARTS combined (the training set)
# and dev-clean (the validation set) whether or not it is a test part.
set -euo pipefail

librispeech_dir=download                 # folder holding (or receiving) LibriSpeech/
download=true                            # download missing parts from openslr.org
train_parts="train-clean-100 train-clean-360 train-other-500"  # combined into librispeech_train
test_parts="dev-clean dev-other test-clean test-other"         # prepared one by one
nj=8                                     # parallel jobs for scanning the audio

help_message="Usage: $0 [options] DATA_DIR"
LOCAL_DIR=$(cd "$(dirname "$0")" && pwd)
. "${LOCAL_DIR}/../../../../recipes/parse_options.sh"
. "${LOCAL_DIR}/../../../../recipes/log.sh"
. "${LOCAL_DIR}/../../../../recipes/path.sh"
[ $# -eq 1 ] || die "${help_message}"
data_dir=$1

part_args=()
for part in ${train_parts} ${test_parts} dev-clean; do
  [[ " ${part_args[*]-} " == *" ${part} "* ]] || part_args+=(--part "${part}")
done
download_args=()
[ "${download}" != true ] || download_args=(--download)
mkdir -p "${librispeech_dir}"
xasr prepare librispeech "${librispeech_dir}" "${data_dir}" "${part_args[@]}" "${download_args[@]}" --num-jobs "${nj}"

train_cuts=()
for part in ${train_parts}; do
  train_cuts+=("${data_dir}/librispeech_cuts_${part}.jsonl.gz")
done
log "combining ${train_parts} into ${data_dir}/librispeech_cuts_train.jsonl.gz"
"${XASR_PYTHON}" - "${data_dir}/librispeech_cuts_train.jsonl.gz" "${train_cuts[@]}" <<'PY'
import os
import sys

from lhotse import CutSet, load_manifest_lazy

out, *parts = sys.argv[1:]
tmp = os.path.join(os.path.dirname(out), ".librispeech_cuts_train.tmp.jsonl.gz")
with CutSet.open_writer(tmp) as writer:  # streamed: 960 h of cuts never sit in memory at once
    for part in parts:
        for cut in load_manifest_lazy(part):
            writer.write(cut)
os.replace(tmp, out)
PY
