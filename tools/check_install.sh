#!/usr/bin/env bash
# Install the package into a FRESH virtual environment, as a user's machine would, and check that
# every module imports and every console script answers --help.
#   tools/check_install.sh                 # plain `pip install -e .` (no extras)
#   EXTRAS=metrics,hf tools/check_install.sh
#   EXTRAS=metrics,hf,dev PLAIN_FIRST=1 tools/check_install.sh  # plain first, then the extras
#   VENV=/tmp/venv tools/check_install.sh  # where the venv goes (default: a temporary folder)
# torch is installed first and pinned (TORCH_VERSION, default 2.13.0: a CPU build where there is
# no CUDA), so no requirement can pull another build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}
extras=${EXTRAS:-}
plain_first=${PLAIN_FIRST:-0}
venv=${VENV:-$(mktemp -d)/venv}
export PIP_DISABLE_PIP_VERSION_CHECK=1

$python -m venv "$venv"
vpy="$venv/bin/python"
echo "[check_install] fresh venv $venv"
"$vpy" -m pip install -q "torch==${torch_version}" \
  || "$vpy" -m pip install -q "torch==${torch_version}" --index-url https://download.pytorch.org/whl/cpu
constraint=$(mktemp)
echo "torch==$("$vpy" -c 'import torch; print(torch.__version__.split("+")[0])')" > "$constraint"
install() {  # pip install -e "$1" with torch pinned
  echo "[check_install] pip install -e '$1'"
  "$vpy" -m pip install -q -c "$constraint" -e "$1"
}

check() {
# Every module of the package imports (optional extras are feature-detected inside functions).
"$vpy" - <<'PY'
import importlib
import pkgutil
import sys

import toolkit

failed = []
names = [m.name for m in pkgutil.walk_packages(toolkit.__path__, "toolkit.")]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as e:  # report every failure, not just the first
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(f"[check_install] imported {len(names) - len(failed)}/{len(names)} modules")
if failed:
    print("\n".join(failed), file=sys.stderr)
    sys.exit(1)
PY

# Every console script declared in setup.py answers --help.
scripts=$("$vpy" - <<'PY'
from importlib.metadata import distribution

eps = distribution("toolkit").entry_points
print(" ".join(sorted(e.name for e in eps if e.group == "console_scripts")))
PY
)
# One process per script, as a user starts them, run side by side (each is ~2 s of imports).
# shellcheck disable=SC2016
printf '%s\n' $scripts | xargs -P "$(nproc)" -I{} bash -c \
  '"$1/bin/$2" --help >/dev/null 2>"$1/help.$2.err" \
   || { echo "[check_install] $2 --help failed:" >&2; cat "$1/help.$2.err" >&2; exit 1; }' \
  _ "$venv" {} || exit 1
n=$(printf '%s\n' $scripts | wc -l)
echo "[check_install] $n console scripts answer --help"
}

if [ -n "$extras" ] && [ "$plain_first" = 1 ]; then
  install .
  check
fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
install "$target"
check
rm -f "$constraint"

# Each extra installs what its feature needs (checked by using it, not just by pip's word).
for extra in ${extras//,/ }; do
  case "$extra" in
    metrics) "$vpy" -c "from pycocoevalcap.cider.cider import Cider; from pycocoevalcap.bleu.bleu import Bleu" ;;
    hf) "$vpy" -c "import transformers; from transformers import AutoConfig, AutoTokenizer" ;;
    dev) "$vpy" -m pytest --version >/dev/null && "$venv/bin/ruff" --version >/dev/null \
           && "$vpy" -c "import pytest_timeout, sklearn" ;;
    *) "$vpy" -c "import importlib.metadata as m; m.distribution('toolkit')" ;;
  esac || { echo "[check_install] extra [$extra] does not work" >&2; exit 1; }
  echo "[check_install] extra [$extra] works"
done
echo "[check_install] OK"
