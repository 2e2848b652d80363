#!/usr/bin/env bash
# Real English test recordings from Debian's pocketsphinx-testdata package (BSD-2, CMU Sphinx) as a
# corpus folder for `xasr prepare tsv`: OUT_DIR/audio/*.wav and OUT_DIR/transcripts.tsv
# (relative/path<TAB>speaker<TAB>text).
#
#   sudo apt-get install pocketsphinx-testdata
#   local/prepare_pocketsphinx.sh data/pocketsphinx_corpus
#   xasr prepare tsv data/pocketsphinx_corpus data --prefix pocketsphinx --split test --language en
#
# What the package ships with transcripts (12 utterances, ~45 s, 16 kHz mono):
#   cards/NNN.wav + cards/cards.transcription            5 spoken card names ("ten of clubs")
#   librivox/*.wav + librivox/transcription              5 LibriVox sentences (Sense and Sensibility)
#   goforward.raw                                        "go forward ten meters" (its transcript in
#                                                        pocketsphinx's own tests; raw 16-bit 16 kHz)
#   tidigits/dhd.2934z.raw                               "two nine three four zero" (TIDIGITS naming:
#                                                        the digits 2934z, z = zero; raw 16-bit 16 kHz)
# Left out: numbers.raw and something.raw (no transcript in the package) and the tidigits/*.mfc
# files (features, not audio). The cards, librivox and goforward recordings are also in
# ../shared/data/real_en_dev (11 utterances), so the two test sets overlap.
set -euo pipefail

psdata_dir=/usr/share/pocketsphinx/test/data   # the package's test data folder
python=${XASR_PYTHON:-python3}                 # Python with soundfile (raw PCM -> wav)

help_message="Usage: $0 [--psdata-dir DIR] OUT_DIR"
. "$(dirname "$0")/../../../../recipes/parse_options.sh"
[ $# -eq 1 ] || { echo "${help_message}" >&2; exit 1; }
out_dir=$1

if [ ! -d "${psdata_dir}/cards" ] || [ ! -d "${psdata_dir}/librivox" ]; then
  echo "$0: error: ${psdata_dir} has no cards/ and librivox/: install Debian's pocketsphinx-testdata" \
    "(sudo apt-get install pocketsphinx-testdata) or pass --psdata-dir" >&2
  exit 1
fi

mkdir -p "${out_dir}/audio"
tsv=${out_dir}/.transcripts.tsv.tmp
: > "${tsv}"

# "<s> words </s> (id)" -> id<TAB>words
parse_transcription() {
  sed -e 's/^ *<s> *//' -e 's/ *<\/s> *(\(.*\)) *$/\t\1/' -e 's/  */ /g' "$1" | awk -F '\t' 'NF == 2 { print $2 "\t" $1 }'
}

parse_transcription "${psdata_dir}/cards/cards.transcription" | while IFS=$'\t' read -r id text; do
  cp "${psdata_dir}/cards/${id}.wav" "${out_dir}/audio/cards_${id}.wav"
  printf 'audio/cards_%s.wav\tpsphinx_cards\t%s\n' "${id}" "${text}" >> "${tsv}"
done
parse_transcription "${psdata_dir}/librivox/transcription" | while IFS=$'\t' read -r id text; do
  cp "${psdata_dir}/librivox/${id}.wav" "${out_dir}/audio/librivox_${id##*-}.wav"
  printf 'audio/librivox_%s.wav\tlibrivox_austen\t%s\n' "${id##*-}" "${text}" >> "${tsv}"
done

raw_files=()
if [ -f "${psdata_dir}/goforward.raw" ]; then
  raw_files+=("${psdata_dir}/goforward.raw" "${out_dir}/audio/goforward.wav")
  printf 'audio/goforward.wav\tpsphinx_goforward\tgo forward ten meters\n' >> "${tsv}"
fi
if [ -f "${psdata_dir}/tidigits/dhd.2934z.raw" ]; then
  raw_files+=("${psdata_dir}/tidigits/dhd.2934z.raw" "${out_dir}/audio/tidigits_dhd_2934z.wav")
  printf 'audio/tidigits_dhd_2934z.wav\ttidigits_dhd\ttwo nine three four zero\n' >> "${tsv}"
fi
if [ ${#raw_files[@]} -gt 0 ]; then
  "${python}" - "${raw_files[@]}" <<'PY'
import sys
import soundfile as sf
pairs = sys.argv[1:]
for raw, wav in zip(pairs[::2], pairs[1::2]):
    audio, _ = sf.read(raw, format="RAW", subtype="PCM_16", samplerate=16000, channels=1, endian="LITTLE",
                       dtype="int16")
    sf.write(wav, audio, 16000, subtype="PCM_16")
PY
fi

mv "${tsv}" "${out_dir}/transcripts.tsv"
echo "$0: wrote $(wc -l < "${out_dir}/transcripts.tsv") utterances to ${out_dir}/transcripts.tsv"
