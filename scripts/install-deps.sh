#!/usr/bin/env bash
# Installs the Debian packages cachedattn builds with. Idempotent; run as root or with sudo.
# Thrust/CUB come with the CUDA toolkit (/usr/local/cuda); never install libthrust-dev/libcub-dev.
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config
          libboost1.81-dev liburing-dev libxxhash-dev libfmt-dev doctest-dev
          nlohmann-json3-dev libcli11-dev libbenchmark-dev gnuplot-nox
          libhiredis-dev redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
