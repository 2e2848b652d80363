#!/usr/bin/env bash
# English ASR trained on synthetic speech only, tested on real speech.
#   training: sentences (public-domain LJSpeech transcripts, LJ001/LJ002 removed) voiced by four
#             offline TTS engines with many voices (xasr prepare tts: piper, espeak-ng, flite, festival)
#   testing:  ../shared/data/real_en_dev (27 real utterances) and Debian's pocketsphinx-testdata
#             recordings (12 real utterances; local/prepare_pocketsphinx.sh)
# Model: Whisper tiny.en encoder, C-Former, frozen SmolLM2-135M-Instruct (packaged weights).
#
#   ./run.sh                                # 10,000 utterances; stage 0 installs the TTS engines (sudo)
#   ./run.sh --num-utts 40000 --nj 8 --data-dir data_40k --exp-dir exp_40k   # more data, new folders
#   ./run.sh --help                         # this recipe's options, then recipes/asr.sh's
#
# Relative paths given as options are relative to this folder.
set -euo pipefail
_cmdline=$(printf '%q ' ./run.sh "$@")
cd "$(dirname "${BASH_SOURCE[0]}")"

text=../../../../shared/data/text/ljspeech_sentences.tsv   # sentences to voice (id<TAB>text, or one a line)
num_utts=10000                          # synthetic training utterances (tens of thousands work)
tts_engines="piper espeak flite festival"  # TTS engines, space separated
tts_seed=0                              # seed for the sentence order and the voice/rate/pitch choices
extra_corpora=""                        # more corpora, space separated ENGINES:COUNT:SEED[:TEXT], e.g. "espeak,flite:3000:1";
                                        # TEXT: a sentences file, "debian" (WordNet examples + fortunes), "dictionary"
                                        # (the Ding dictionary's example sentences), "games" or "naev" (game dialogue) or
                                        # "wikipedia" (gensim's sample of articles) or "short" (1-3 word phrases); default: --text
valid_percent=2                         # sentences held out of training for a validation loss and token accuracy
aug_copies=1                            # augmented copies of each training cut (speed, reverberation, noise, telephone, codecs)
aug_fraction=1.0                        # ... of this random fraction of the training cuts
nj=2                                    # parallel synthesis processes
real_en_dev_dir=../../../../shared/data/real_en_dev   # real English test set (transcripts.tsv + audio)
psdata_dir=/usr/share/pocketsphinx/test/data          # pocketsphinx-testdata's recordings

parse_options_forward=true  # other options go to recipes/asr.sh
. ../../../recipes/parse_options.sh

q() { printf '%q' "$1"; }
# Debian packages of the engines in use (rhvoice, pico and mbrola come from contrib/non-free)
apt_packages="pocketsphinx-testdata"
for engine in ${tts_engines} $(for spec in ${extra_corpora}; do echo "${spec%%:*}" | tr , ' '; done); do
  case ${engine} in
    espeak) apt_packages+=" espeak-ng" ;;
    flite) apt_packages+=" flite" ;;
    festival) apt_packages+=" festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts" ;;
    rhvoice) apt_packages+=" rhvoice rhvoice-english" ;;
    pico) apt_packages+=" libttspico-utils" ;;
    mbrola) apt_packages+=" espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1" ;;
  esac
done
case " ${extra_corpora} " in *:debian\ *) apt_packages+=" wordnet-base fortunes fortunes-min" ;; esac
case " ${extra_corpora} " in *:dictionary\ *) apt_packages+=" dict-de-en" ;; esac
case " ${extra_corpora} " in *:games\ *) apt_packages+=" freedroidrpg-data endless-sky-data wamerican" ;; esac
case " ${extra_corpora} " in *:naev\ *) apt_packages+=" naev-data wamerican" ;; esac
case " ${extra_corpora} " in *:short\ *) apt_packages+=" wordnet-base fortunes fortunes-min dict-de-en freedroidrpg-data \
endless-sky-data naev-data wamerican tuxpaint-stamps-default" ;; esac
pip_extras=weights,tts
case " ${extra_corpora} " in *:wikipedia\ *) pip_extras+=",texts" ;; esac
exec ../../../recipes/asr.sh \
  --corpus tts_en \
  --apt-packages "${apt_packages}" \
  --apt-components "contrib non-free" \
  --pip-extras ${pip_extras} \
  --prepare-cmd "local/prepare.sh --text $(q "${text}") --num-utts ${num_utts} --tts-engines $(q "${tts_engines}") \
--tts-seed ${tts_seed} --extra-corpora $(q "${extra_corpora}") --valid-percent ${valid_percent} --aug-copies ${aug_copies} --aug-fraction ${aug_fraction} --nj ${nj} --real-en-dev-dir $(q "${real_en_dev_dir}") --psdata-dir $(q "${psdata_dir}")" \
  --train-set "tts_fit$([ "${aug_copies}" -gt 0 ] && echo " tts_fitaug")" \
  --valid-set tts_valid \
  --test-sets "real_en_dev pocketsphinx_test" \
  --asr-config conf/cformer.yaml \
  --run-cmd "${_cmdline% }" \
  "${forwarded_options[@]}"
