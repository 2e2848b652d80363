#!/usr/bin/env bash
# The multimodal sets of the tuxpaint/masr recipe (stage 0 hook): the stamps' clips, then the training
# set and the test conditions (local/make_sets.py). Usage: local/make_sets.sh DATA_DIR
set -euo pipefail
LOCAL_DIR=$(cd "$(dirname "$0")" && pwd)
. "${LOCAL_DIR}/../../../../recipes/path.sh"
[ $# -eq 1 ] || { echo "Usage: $0 DATA_DIR" >&2; exit 1; }
"${XASR_PYTHON}" "${LOCAL_DIR}/make_clips.py" "$1/clips"
"${XASR_PYTHON}" "${LOCAL_DIR}/make_sets.py" "$1" "$1/clips"
