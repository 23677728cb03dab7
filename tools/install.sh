#!/usr/bin/env bash
# Install everything the toolkit and its demo recipe need on a fresh Debian/Ubuntu machine.
#   tools/install.sh            # CPU torch where there is no CUDA GPU, plus all requirements
#   TORCH_VERSION=2.13.0 tools/install.sh
# torch is installed FIRST and pinned, so no other requirement can pull a (multi-GB) CUDA build.
# torchaudio and k2 are optional extras (feature-detected); see docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian packages: espeak-ng speaks the demo corpus; sox/ffmpeg-free audio handling via soundfile;
# Java runs pycocoevalcap's jars (PTB tokenizer, METEOR, SPICE) for the captioning metrics.
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
dpkg -s libsndfile1 >/dev/null 2>&1 || need_apt+=(libsndfile1)
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[install] apt-get install ${need_apt[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# torch: keep a working install; otherwise the CPU wheel where no NVIDIA GPU is present.
if $python -c "import torch" 2>/dev/null; then
  echo "[install] torch $($python -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1; then
  $python -m pip install -q "torch==${torch_version}"
else
  $python -m pip install -q "torch==${torch_version}" \
    || $python -m pip install -q "torch==${torch_version}" --index-url https://download.pytorch.org/whl/cpu
fi
torch_now=$($python -c 'import torch; print(torch.__version__.split("+")[0])')

# The package and its requirements; the constraint keeps pip from replacing torch.
constraint=$(mktemp)
echo "torch==${torch_now}" > "$constraint"
$python -m pip install -q -c "$constraint" -e ".[dev]"
rm -f "$constraint"

$python - <<'PY'
import importlib
for mod in ("torch", "lhotse", "sentencepiece", "tensorboard", "yaml", "soundfile", "matplotlib"):
    m = importlib.import_module(mod)
    print(f"[install] {mod:14s} {getattr(m, '__version__', 'ok')}")
for opt in ("torchaudio", "k2"):
    try:
        importlib.import_module(opt)
        print(f"[install] {opt:14s} present (optional fast path)")
    except Exception as e:  # CUDA-only wheels fail to import on CPU machines
        print(f"[install] {opt:14s} not available ({type(e).__name__}); pure-torch path is used")
PY
