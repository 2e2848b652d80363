#!/usr/bin/env bash
# AISHELL-1 (Mandarin read speech, 178 h, scored by character: CER): Whisper large-v3 encoder
# (frozen), C-Former, Qwen2-7B-Instruct with LoRA. Needs GPUs (sized for 8 x 80 GB) and the network
# (openslr.org and the Hugging Face hub) or local copies of the corpus and the models.
#
#   ./run.sh --ngpu 8                                    # DDP through torchrun
#   ./run.sh --stage 5 --stop-stage 6 --decode-opts "--device cuda --beam 4" --inference-tag beam4
#   ./run.sh --help                                      # this recipe's options, then recipes/asr.sh's
#
# Relative paths given as options are relative to this folder.
set -euo pipefail
_cmdline=$(printf '%q ' ./run.sh "$@")
cd "$(dirname "${BASH_SOURCE[0]}")"

aishell_dir=download                     # folder holding (or receiving) aishell/data_aishell
download=true                            # download AISHELL-1 from openslr.org (lhotse's recipe)

parse_options_forward=true  # other options go to recipes/asr.sh
. ../../../recipes/parse_options.sh

download_flag=""
[ "${download}" != true ] || download_flag=" --download"
# Whisper large-v3's outputs of 150 h of training audio would take ~140 GB: no feature cache by
# default (--cache-features true turns it on).
exec ../../../recipes/asr.sh \
  --corpus aishell \
  --prepare-cmd "xasr prepare aishell $(printf %q "${aishell_dir}")${download_flag}" \
  --train-set aishell_train \
  --valid-set aishell_dev \
  --test-sets "aishell_dev aishell_test" \
  --asr-config conf/whisper_large_v3_qwen2_7b_lora.yaml \
  --cache-features false \
  --decode-opts "--device cuda" \
  --run-cmd "${_cmdline% }" \
  "${forwarded_options[@]}"
