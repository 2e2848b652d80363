# Logging helpers for recipe scripts (icefall style). Source it: `. recipes/log.sh`.
#
#   log "message"   ->  2026-11-28 10:42:07 (asr.sh:123:main) message
#   die "message"   ->  the same line prefixed with "error:" on stderr, then exit 1

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

die() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) error: $*" >&2
  exit 1
}
