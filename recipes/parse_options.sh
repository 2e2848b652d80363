# Kaldi-style command-line options for recipe scripts (after Kaldi's utils/parse_options.sh).
#
# Source it after the script has given its variables their defaults, one per line, with a comment:
#
#   stage=0           # first stage to run
#   stop_stage=100    # last stage to run
#   . "${recipes_dir}/parse_options.sh"
#
# Then `--stage 3`, `--stop-stage 4` or `--stop_stage=4` set those variables (dashes in option names
# become underscores). The options a script accepts are exactly the variables it assigns at the start
# of a line, in lower case, before the line that sources this file; other variables set before it are
# named in upper case or with a leading underscore (`help_message` is not an option either).
# `--help` (or -h) prints $help_message, if the script sets one, and lists the options with the
# comment on their line and their current value. A variable whose default is true or false only takes
# true or false. An unknown option is an error that names it.
#
# A script that hands options on to another one (egs/*/run.sh -> recipes/asr.sh) sets
# parse_options_forward=true before sourcing: unknown options, each with its value, are then collected
# in the array `forwarded_options` (and --help is forwarded too, after listing this script's options).
# Arguments after the options (or after `--`) stay in "$@".

_po_script=${BASH_SOURCE[1]:-$0}
_po_source_line=${BASH_LINENO[0]:-0}
_po_names=()
_po_docs=()
if [ -f "${_po_script}" ]; then
  _po_n=0
  while IFS= read -r _po_text || [ -n "${_po_text}" ]; do
    _po_n=$((_po_n + 1))
    [ "${_po_n}" -ge "${_po_source_line}" ] && break
    if [[ ${_po_text} =~ ^([a-z][a-z0-9_]*)= ]]; then
      _po_name=${BASH_REMATCH[1]}
      [[ ${_po_name} == parse_options_* || ${_po_name} == help_message || " ${_po_names[*]-} " == *" ${_po_name} "* ]] && continue
      _po_doc=""
      if [[ ${_po_text} =~ [[:space:]]#[[:space:]]*(.*)$ ]]; then
        _po_doc=${BASH_REMATCH[1]}
      fi
      _po_names+=("${_po_name}")
      _po_docs+=("${_po_doc}")
    fi
  done < "${_po_script}"
fi

_po_usage() {
  local i name
  if [ -n "${help_message:-}" ]; then
    echo -e "${help_message}"
  fi
  echo "Options of ${_po_script##*/} (--name value or --name=value; [current value]):"
  for i in "${!_po_names[@]}"; do
    name=${_po_names[$i]}
    printf '  %-24s %s [%s]\n' "--${name//_/-}" "${_po_docs[$i]}" "${!name-}"
  done
}

_po_is_option() {
  local name
  for name in "${_po_names[@]}"; do
    [ "${name}" = "$1" ] && return 0
  done
  return 1
}

forwarded_options=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      _po_usage
      if [ "${parse_options_forward:-false}" = true ]; then
        forwarded_options+=(--help)
        shift
        continue
      fi
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      _po_option=${1%%=*}
      _po_value=${1#*=}
      shift
      ;;
    --?*)
      _po_option=$1
      if [ $# -lt 2 ]; then
        echo "${_po_script##*/}: error: option ${_po_option} needs a value" >&2
        exit 1
      fi
      _po_value=$2
      shift 2
      ;;
    *)
      break
      ;;
  esac
  _po_name=${_po_option#--}
  _po_name=${_po_name//-/_}
  if _po_is_option "${_po_name}"; then
    case "${!_po_name-}" in
      true|false)
        if [ "${_po_value}" != true ] && [ "${_po_value}" != false ]; then
          echo "${_po_script##*/}: error: ${_po_option} takes true or false, not '${_po_value}'" >&2
          exit 1
        fi
        ;;
    esac
    printf -v "${_po_name}" '%s' "${_po_value}"
  elif [ "${parse_options_forward:-false}" = true ]; then
    forwarded_options+=("${_po_option}" "${_po_value}")
  else
    echo "${_po_script##*/}: error: unknown option ${_po_option} (--help lists the options)" >&2
    exit 1
  fi
done

unset -f _po_usage _po_is_option
unset _po_script _po_source_line _po_names _po_docs _po_n _po_text _po_name _po_doc _po_option _po_value
