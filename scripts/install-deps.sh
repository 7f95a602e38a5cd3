#!/usr/bin/env bash
# Installs the Debian packages lowbit builds and tests with, only when one is missing,
# and the npm reference tokenizer used by the differential tests.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libpcre2-dev libjansson-dev libcurl4-openssl-dev
          libmicrohttpd-dev libsqlite3-dev libyaml-dev libcairo2-dev libpango1.0-dev
          libopenblas-dev liblapacke-dev clang libclang-rt-14-dev openmpi-bin libopenmpi-dev
          python3-numpy python3-sentencepiece nodejs npm
          poppler-utils chromium wrk nginx-light curl valgrind)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from outside Debian on a developer machine; accept any working npm.
if command -v npm >/dev/null 2>&1; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -f tests/npm/package.json ] && [ ! -d tests/npm/node_modules ]; then
  (cd tests/npm && npm install --no-audit --no-fund --silent)
fi
