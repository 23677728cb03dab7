#!/usr/bin/env bash
# Stage 0 of egs/folder: your audio → data/manifests/folder_cuts_{train,dev,test}.jsonl.gz, from
#   * a folder of audio files in label sub-folders (<label>/**/<audio>, or
#     {train,dev,test}/<label>/...): the `folder` prepare;
#   * or a CSV/TSV/JSONL listing (path,label[,caption][,split][,group] ...; paths relative to the
#     listing's folder): the `listing` prepare, with captions made from the labels of rows
#     without one.
# Without split folders / a split column the files are split into train/dev/test (seeded,
# stratified by label, whole recording groups); without a dev part one is carved from train.
# Files shorter than --min-duration (default 0.1 s) are skipped and listed in
# data/manifests/folder_cuts_<split>.skipped.tsv.
# Usage: local/data.sh <manifest dir> <audio dir or listing file> [more prepare options]
#   e.g. local/data.sh data/manifests /data/drums --domain music --task music_instrument --min-duration 0.02
set -euo pipefail
usage="usage: $0 <manifest dir> <audio dir or listing file (.csv/.tsv/.jsonl)> [--domain sound --task sound_class --min-duration 0.1 ...]"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 1; }
out=$1; src=$2; shift 2
python=${PYTHON:-python3}
if [ -d "$src" ]; then
  exec $python -m toolkit.bin.prepare folder --name folder --corpus-dir "$src" --output-dir "$out" "$@"
elif [ -f "$src" ]; then
  case "${src,,}" in
    *.csv|*.tsv|*.tab|*.jsonl|*.json) ;;
    *) echo "$0: $src is a file but not a .csv/.tsv/.jsonl listing (path,label[,caption][,split])" >&2; exit 1 ;;
  esac
  exec $python -m toolkit.bin.prepare listing --name folder --label-captions true \
    --corpus-dir "$(dirname "$src")" --listing "$(basename "$src")" --output-dir "$out" "$@"
else
  echo "$0: $src: no such folder or listing file" >&2
  echo "$usage" >&2
  exit 1
fi
