#!/usr/bin/env bash
# Stage 0 of egs/folder: a folder of audio files in label sub-folders (<label>/**/<audio>, or
# {train,dev,test}/<label>/...) → data/manifests/folder_cuts_{train,dev,test}.jsonl.gz.
# Usage: local/data.sh <manifest dir> <audio dir> [more `toolkit.bin.prepare folder` options]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 <manifest dir> <audio dir> [--domain sound --task sound_class ...]" >&2; exit 1; }
out=$1; audio_dir=$2; shift 2
python=${PYTHON:-python3}
$python -m toolkit.bin.prepare folder --corpus-dir "$audio_dir" --output-dir "$out" "$@"
