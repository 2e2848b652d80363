#!/usr/bin/env bash
# LibriSpeech 960 h (English read speech): Whisper large-v3 encoder (frozen), C-Former,
# Qwen2-7B-Instruct with LoRA. Needs GPUs (sized for 8 x 80 GB) and the network (openslr.org and the
# Hugging Face hub) or local copies of the corpus and the models (a config's sources may be local dirs).
#
#   ./run.sh --ngpu 8                                    # DDP through torchrun
#   ./run.sh --asr-config conf/whisper_large_v3_qwen2_1.5b.yaml --ngpu 4    # smaller GPUs
#   ./run.sh --stage 5 --stop-stage 6 --decode-opts "--device cuda --beam 4" --inference-tag beam4
#   ./run.sh --help                                      # this recipe's options, then recipes/asr.sh's
#
# Relative paths given as options are relative to this folder.
set -euo pipefail
_cmdline=$(printf '%q ' ./run.sh "$@")
cd "$(dirname "${BASH_SOURCE[0]}")"

librispeech_dir=download                 # folder holding (or receiving) LibriSpeech/
download=true                            # download missing parts from openslr.org (lhotse's recipe)
train_parts="train-clean-100 train-clean-360 train-other-500"  # combined into the set librispeech_train
test_parts="dev-clean dev-other test-clean test-other"         # each one a test set librispeech_<part>
nj=8                                     # parallel jobs for scanning the audio

parse_options_forward=true  # other options go to recipes/asr.sh
. ../../../recipes/parse_options.sh

q() { printf '%q' "$1"; }
test_sets=""
for part in ${test_parts}; do
  test_sets+="${test_sets:+ }librispeech_${part}"
done
# Whisper large-v3's outputs (1280 x 50 per second) of 960 h would take ~880 GB: no feature cache.
exec ../../../recipes/asr.sh \
  --corpus librispeech \
  --prepare-cmd "local/prepare.sh --librispeech-dir $(q "${librispeech_dir}") --download ${download} \
--train-parts $(q "${train_parts}") --test-parts $(q "${test_parts}") --nj ${nj}" \
  --train-set librispeech_train \
  --valid-set librispeech_dev-clean \
  --test-sets "${test_sets}" \
  --asr-config conf/whisper_large_v3_qwen2_7b_lora.yaml \
  --cache-features false \
  --decode-opts "--device cuda" \
  --run-cmd "${_cmdline% }" \
  "${forwarded_options[@]}"
