#!/usr/bin/env bash
# Stage 0 data of the tts_en recipe (run.sh passes its options): writes into DATA_DIR
#   tts_{recordings,supervisions,cuts}_train.jsonl.gz           synthetic speech (audio in DATA_DIR/audio/)
#   extra_s{SEED}/tts_*_train.jsonl.gz                          each --extra-corpora corpus
#   tts_cuts_{fit,valid}.jsonl.gz                               all synthetic cuts, whole sentences held out for validation
#   tts_cuts_fitaug.jsonl.gz                                    --aug-copies augmented copies of the fit cuts (augment/: noise, RIRs)
#   real_en_{recordings,supervisions,cuts}_dev.jsonl.gz         ../shared/data/real_en_dev
#   pocketsphinx_{recordings,supervisions,cuts}_test.jsonl.gz   pocketsphinx-testdata (DATA_DIR/pocketsphinx/)
# The real test sets are skipped when their cuts exist; synthesis always runs and resumes.
set -euo pipefail

text=../../../../shared/data/text/ljspeech_sentences.tsv   # sentences to voice
num_utts=10000                          # synthetic training utterances
tts_engines="piper espeak flite festival"  # TTS engines
tts_seed=0                              # seed of the synthesis plan
extra_corpora=""                        # more corpora, space separated ENGINES:COUNT:SEED[:TEXT] (engines comma separated), e.g. "espeak,flite:3000:1";
                                        # TEXT: a sentences file, "debian" (WordNet examples + fortunes), "dictionary" (the Ding
                                        # dictionary's example sentences), "games" (FreedroidRPG and Endless Sky dialogue),
                                        # "naev" (Naev's mission text), "wikipedia" (gensim's sample of articles) or "short"
                                        # (phrases of 1-3 words from all the Debian sources, Tux Paint's captions excluded),
                                        # built here as DATA_DIR/text/TEXT_sentences.tsv; default --text
valid_percent=2                         # sentences held out for validation
aug_copies=1                            # augmented copies of each training cut (0: none)
aug_fraction=1.0                        # ... of this random fraction of the training cuts
nj=2                                    # parallel synthesis processes
real_en_dev_dir=../../../../shared/data/real_en_dev   # real English test set
psdata_dir=/usr/share/pocketsphinx/test/data          # pocketsphinx-testdata's recordings

help_message="Usage: $0 [options] DATA_DIR"
LOCAL_DIR=$(cd "$(dirname "$0")" && pwd)
. "${LOCAL_DIR}/../../../../recipes/parse_options.sh"
. "${LOCAL_DIR}/../../../../recipes/log.sh"
. "${LOCAL_DIR}/../../../../recipes/path.sh"
[ $# -eq 1 ] || die "${help_message}"
data_dir=$1

# The real test sets first: their references are kept out of the training text.
if [ -f "${data_dir}/real_en_cuts_dev.jsonl.gz" ]; then
  log "real_en_dev already prepared"
else
  xasr prepare tsv "${real_en_dev_dir}" "${data_dir}" --prefix real_en --split dev --language en
fi

if [ -f "${data_dir}/pocketsphinx_cuts_test.jsonl.gz" ]; then
  log "pocketsphinx_test already prepared"
else
  "${LOCAL_DIR}/prepare_pocketsphinx.sh" --psdata-dir "${psdata_dir}" "${data_dir}/pocketsphinx"
  xasr prepare tsv "${data_dir}/pocketsphinx" "${data_dir}" --prefix pocketsphinx --split test --language en
fi

# Always run: it skips the audio already written, so an interrupted synthesis continues.
engine_args=()
for engine in ${tts_engines}; do
  engine_args+=(--engine "${engine}")
done
log "synthesizing ${num_utts} utterances with ${tts_engines} into ${data_dir}/audio"
xasr prepare tts "${text}" "${data_dir}" --num-utterances "${num_utts}" "${engine_args[@]}" \
  --seed "${tts_seed}" --num-jobs "${nj}" --prefix tts --split train
all_cuts=("${data_dir}/tts_cuts_train.jsonl.gz")
for spec in ${extra_corpora}; do
  IFS=: read -r engines count seed corpus_text <<< "${spec}"
  [ -n "${seed}" ] && [ "${seed}" != "${tts_seed}" ] || die "--extra-corpora ${spec}: give each corpus its own seed (ENGINES:COUNT:SEED)"
  corpus_text=${corpus_text:-${text}}
  length_args=()
  case ${corpus_text} in
    debian) sources="wordnet fortunes" ;;
    dictionary|games|naev|wikipedia) sources="${corpus_text}" ;;
    short) sources="wordnet fortunes dictionary games naev"; length_args=(--min-words 1 --max-words 3) ;;
    *) sources="" ;;
  esac
  if [ -n "${sources}" ]; then
    name=${corpus_text}
    corpus_text=${data_dir}/text/${name}_sentences.tsv
    if [ ! -f "${corpus_text}" ]; then
      log "collecting sentences from ${sources} (test references excluded)"
      exclude_args=(--exclude "${real_en_dev_dir}/transcripts.tsv")
      [ -f "${data_dir}/pocketsphinx/transcripts.tsv" ] && exclude_args+=(--exclude "${data_dir}/pocketsphinx/transcripts.tsv")
      if [ "${name}" = short ]; then  # short phrases are what Tux Paint's captions are: keep them out too
        xasr prepare tuxpaint "${data_dir}/tuxpaint"
        exclude_args+=(--exclude "${data_dir}/tuxpaint/tuxpaint_captions.tsv")
      fi
      xasr prepare text "${corpus_text}" $(printf -- '--source %s ' ${sources}) "${length_args[@]}" "${exclude_args[@]}"
    fi
  fi
  engine_args=()
  for engine in ${engines//,/ }; do
    engine_args+=(--engine "${engine}")
  done
  log "synthesizing ${count} more utterances with ${engines//,/ } (seed ${seed}) into ${data_dir}/extra_s${seed}"
  xasr prepare tts "${corpus_text}" "${data_dir}/extra_s${seed}" --num-utterances "${count}" "${engine_args[@]}" \
    --seed "${seed}" --num-jobs "${nj}" --prefix tts --split train
  all_cuts+=("${data_dir}/extra_s${seed}/tts_cuts_train.jsonl.gz")
done
"${XASR_PYTHON}" "${LOCAL_DIR}/split_valid.py" --valid-percent "${valid_percent}" "${data_dir}" "${all_cuts[@]}"
if [ "${aug_copies}" -gt 0 ]; then
  log "augmenting the training cuts (${aug_copies} copies: speed, reverberation, noise, telephone, codecs)"
  xasr prepare augment "${data_dir}/tts_cuts_fit.jsonl.gz" "${data_dir}/tts_cuts_fitaug.jsonl.gz" \
    --copies "${aug_copies}" --fraction "${aug_fraction}" --seed "${tts_seed}" --noise-dir "${data_dir}/augment"
fi
