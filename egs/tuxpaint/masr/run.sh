#!/usr/bin/env bash
# Image- and video-conditioned ASR (X-LLM stage 3) on Tux Paint's stamps, tested on real speech.
#   training: the stamps' captions voiced by seven offline TTS engines, each shown its stamp's
#             picture or a clip made from it (pans and zooms), one degraded copy of each (noise at
#             10/5/0 dB, a noise burst over ~35% of the speech); general sentences speech-only
#   testing:  the 65 real spoken captions of tuxpaint-stamps-default (never in training) in five
#             conditions (clean, 10, 5, 0 dB, masked) x five visual contexts (none, own picture, wrong
#             picture, own clip, wrong clip); real_en_dev speech-only, before and after stage 3
# Model: the packaged default-en (Whisper tiny.en encoder, C-Former, frozen SmolLM2-135M) plus the
# frozen DINOv2-S/14 (packaged ONNX) and a Q-Former; stage 4 (X-LLM stage 3) trains the Q-Former alone
# from default-en on the (picture or clip, caption) pairs (conf/masr_qformer.yaml), the speech side
# frozen, so speech-only decoding stays default-en's. The joint pass that also moved the C-Former
# (conf/masr.yaml, then conf/masr_picture.yaml) is the ablation in RESULTS.md.
#
#   ./run.sh                      # everything (stage 0 installs Debian packages: root or sudo)
#   ./run.sh --stage 5            # decode and score again
#   ./run.sh --help               # this recipe's options, then recipes/asr.sh's
#
# Relative paths given as options are relative to this folder.
set -euo pipefail
_cmdline=$(printf '%q ' ./run.sh "$@")
cd "$(dirname "${BASH_SOURCE[0]}")"

num_captions=4000                       # synthetic utterances of the stamp captions
num_general=2000                        # synthetic speech-only utterances of general sentences
tts_engines="piper espeak flite festival rhvoice pico mbrola"
nj=2                                    # parallel synthesis processes
real_en_dev_dir=../../../../shared/data/real_en_dev   # speech-only real English check (skipped where absent)
picture_decode_opts=""                  # extra xasr decode options for the image model (e.g. "--set lm_weight=0.3")
stage=0
stop_stage=100

parse_options_forward=true  # other options go to recipes/asr.sh
. ../../../recipes/parse_options.sh

q() { printf '%q' "$1"; }
apt_packages="tuxpaint-stamps-default wordnet-base fortunes fortunes-min espeak-ng flite festival \
festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts rhvoice rhvoice-english libttspico-utils mbrola \
mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1"
test_sets=""
for condition in clean snr10 snr5 snr0 masked; do
  for visual in none image wrong video wrongvideo; do
    test_sets+=" tux${condition}_${visual}"
  done
done
speech_only_sets="tuxclean_none"
if [ -f "${real_en_dev_dir}/transcripts.tsv" ]; then
  test_sets="real_en_dev${test_sets}"
  speech_only_sets="real_en_dev ${speech_only_sets}"
fi
python=${XASR_PYTHON:-python3}
common=(
  --corpus tuxpaint_masr
  --apt-packages "${apt_packages}"
  --apt-components "contrib non-free"
  --pip-extras weights,vision,tts
  --prepare-cmd "local/prepare.sh --num-captions ${num_captions} --num-general ${num_general} \
--tts-engines $(q "${tts_engines}") --nj ${nj} --real-en-dev-dir $(q "${real_en_dev_dir}")"
  --multimodal-prepare-cmd local/make_sets.sh
  --train-set masr_train
  --multimodal-train-set masrpicture_train
  --asr-config conf/masr_qformer.yaml
  --tag masr
  --cache-features false
  --run-cmd "${_cmdline% }"
)
if [[ " ${forwarded_options[*]-} " == *" --help "* ]]; then
  exec ../../../recipes/asr.sh "${common[@]}" --test-sets "${test_sets}" "${forwarded_options[@]}"
fi
# stage 4 starts from the packaged default-en (installed by stage 0)
packaged() { "${python}" -c "from xasr.pretrained import packaged_model_dir; print(packaged_model_dir())" 2>/dev/null; }
if [ "${stage}" -le 0 ] && [ "${stop_stage}" -ge 0 ]; then
  ../../../recipes/asr.sh "${common[@]}" --stage 0 --stop-stage 0 --test-sets "${test_sets}" \
    "${forwarded_options[@]}"
fi
default_en=$(packaged)
[ -n "${default_en}" ] || { echo "run.sh: xasr's packaged default-en is not installed: run stage 0" >&2; exit 1; }
exp=exp/masr
vision_cache=(--train-opts "--vision-feature-cache exp/features/vision")  # one DINOv2 pass per picture
if [ "${stop_stage}" -ge 1 ] && [ "${stage}" -le 4 ]; then
  ../../../recipes/asr.sh "${common[@]}" --stage "$((stage > 1 ? stage : 1))" --stop-stage "$((stop_stage < 4 ? stop_stage : 4))" \
    --test-sets "${test_sets}" --integrate-init "${default_en}" "${vision_cache[@]}" "${forwarded_options[@]}"
fi
if [ "${stop_stage}" -ge 5 ]; then
  ../../../recipes/asr.sh "${common[@]}" --stage "$((stage > 5 ? stage : 5))" --stop-stage "${stop_stage}" \
    --test-sets "${test_sets}" --integrate-init "${default_en}" \
    --decode-opts "${picture_decode_opts}" "${forwarded_options[@]}"
fi
# speech only, before stage 3: default-en itself on the same speech (its own search, no picture)
if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 5 ]; then
  ../../../recipes/asr.sh "${common[@]}" --stage 5 --stop-stage 6 --test-sets "${speech_only_sets}" \
    --integrate-init "${default_en}" --decode-model "${default_en}" --inference-tag default_en \
    --results-md "${exp}/RESULTS_default_en.md" "${forwarded_options[@]}"
  "${python}" local/conditions_table.py "${exp}" --output "${exp}/conditions.md"
fi
