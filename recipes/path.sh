# Source this to use this checkout's xasr (egs/*/asr/path.sh link here): `. ./path.sh; xasr --help`.
# It puts the repository first on PYTHONPATH, so its code is used whether or not (or from wherever)
# xasr was pip-installed, and defines `xasr` as `python3 -m xasr.cli` for shells without the command.
XASR_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
case ":${PYTHONPATH:-}:" in
  *":${XASR_ROOT}:"*) ;;
  *) export PYTHONPATH="${XASR_ROOT}${PYTHONPATH:+:${PYTHONPATH}}" ;;
esac
export XASR_ROOT
export PYTHONUNBUFFERED=1
export XASR_PYTHON=${XASR_PYTHON:-python3}
xasr() { "${XASR_PYTHON}" -m xasr.cli "$@"; }
export -f xasr
