#!/usr/bin/env bash
# Installs the Debian 12 packages DiTKit needs (only those missing; needs root for apt-get),
# then configures and builds into build/. CUDA is built when /usr/local/cuda/bin/nvcc exists.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build pkg-config ccache
  libcli11-dev nlohmann-json3-dev libstb-dev zlib1g-dev libwebp-dev
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev
  libopencv-core-dev libopencv-imgproc-dev
  libsentencepiece-dev libicu-dev libopenblas-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${DITKIT_CMAKE_ARGS:-} >/dev/null
cmake --build build
