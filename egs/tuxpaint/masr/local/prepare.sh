#!/usr/bin/env bash
# Stage 0 data of the tuxpaint/masr recipe (run.sh passes its options): writes into DATA_DIR
#   tuxpaint_{recordings,supervisions,cuts}_test.jsonl.gz   the stamps' real spoken captions (test only)
#   tuxpaint_captions.tsv                                  every stamp's caption (id = stamp id)
#   captions/tts_cuts_train.jsonl.gz                       the captions voiced by the offline TTS engines
#   general/tts_cuts_train.jsonl.gz                        general English sentences (WordNet, fortunes), speech-only
#   real_en_{recordings,supervisions,cuts}_dev.jsonl.gz    ../shared/data/real_en_dev where present (speech-only test)
# Synthesis always runs and resumes; the real recordings never enter training.
set -euo pipefail

num_captions=4000                       # synthetic utterances of the stamp captions
num_general=2000                        # synthetic speech-only utterances of general sentences
tts_engines="piper espeak flite festival rhvoice pico mbrola"
tts_seed=14                             # seed of the captions' synthesis plan (general: seed + 1)
nj=2                                    # parallel synthesis processes
real_en_dev_dir=../../../../shared/data/real_en_dev   # its references are kept out of the general text

help_message="Usage: $0 [options] DATA_DIR"
LOCAL_DIR=$(cd "$(dirname "$0")" && pwd)
. "${LOCAL_DIR}/../../../../recipes/parse_options.sh"
. "${LOCAL_DIR}/../../../../recipes/log.sh"
. "${LOCAL_DIR}/../../../../recipes/path.sh"
[ $# -eq 1 ] || die "${help_message}"
data_dir=$1

if [ -f "${data_dir}/tuxpaint_cuts_test.jsonl.gz" ] && [ -f "${data_dir}/tuxpaint_captions.tsv" ]; then
  log "tuxpaint test set already prepared"
else
  xasr prepare tuxpaint "${data_dir}"
fi
if [ -f "${data_dir}/real_en_cuts_dev.jsonl.gz" ]; then
  log "real_en_dev already prepared"
elif [ -f "${real_en_dev_dir}/transcripts.tsv" ]; then
  xasr prepare tsv "${real_en_dev_dir}" "${data_dir}" --prefix real_en --split dev --language en
else
  log "no ${real_en_dev_dir}: the speech-only real_en_dev check is left out"
fi
engine_args=()
for engine in ${tts_engines}; do
  engine_args+=(--engine "${engine}")
done
log "synthesizing ${num_captions} caption utterances with ${tts_engines}"
xasr prepare tts "${data_dir}/tuxpaint_captions.tsv" "${data_dir}/captions" --num-utterances "${num_captions}" \
  "${engine_args[@]}" --seed "${tts_seed}" --num-jobs "${nj}" --prefix tts --split train
general_text=${data_dir}/general_sentences.tsv
if [ ! -f "${general_text}" ]; then
  exclude_args=(--exclude "${data_dir}/tuxpaint_captions.tsv")
  [ -f "${real_en_dev_dir}/transcripts.tsv" ] && exclude_args+=(--exclude "${real_en_dev_dir}/transcripts.tsv")
  xasr prepare text "${general_text}" --source wordnet --source fortunes "${exclude_args[@]}"
fi
log "synthesizing ${num_general} general (speech-only) utterances"
xasr prepare tts "${general_text}" "${data_dir}/general" --num-utterances "${num_general}" \
  "${engine_args[@]}" --seed $((tts_seed + 1)) --num-jobs "${nj}" --prefix tts --split train
