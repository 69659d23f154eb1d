#!/usr/bin/env bash
# The Python environment of the Schema Registry tests: a venv with Confluent's Kafka client and
# Schema Registry serializers (tests/registry/requirements.txt, everything pinned), made once
# under $KWB_CACHE/pyenv/<hash>/ and reused; the hash is of the requirements file and of the
# Python that runs it, so a change to either makes a new venv.
#   scripts/registry/pyenv.sh          makes the venv when missing, prints its python's path
# Needs Python 3.9 or newer with its venv module (Debian: python3-venv, installed with apt-get
# when missing) and PyPI.
set -euo pipefail

KWB_CACHE="${KWB_CACHE:-$HOME/.cache/kafka-ws-bridge}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
requirements="$root/tests/registry/requirements.txt"
python="${KWB_PYTHON:-$(command -v python3 || true)}"
[ -n "$python" ] || { echo "the Schema Registry tests need Python 3.9 or newer (python3)" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
  { echo "the Schema Registry tests need Python 3.9 or newer; $python is $("$python" --version 2>&1)" >&2; exit 1; }

key="$({ cat "$requirements"; readlink -f "$python"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-12)"
venv="$KWB_CACHE/pyenv/$key"

make_venv() {
  local started="$EPOCHREALTIME"
  echo "==> making the Python environment of the Schema Registry tests in $venv (once)" >&2
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >&2; then
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "==> installing python3-venv with apt-get" >&2
    rm -rf "$venv"
    "${sudo[@]}" apt-get install -y --no-install-recommends python3-venv >&2 ||
      { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y --no-install-recommends python3-venv >&2; } ||
      true
    if ! "$python" -m venv "$venv" >&2; then
      echo "cannot make a venv with $python (its venv module is missing?)" >&2
      return 1
    fi
  fi
  # Quiet unless it fails: then pip's whole output, which says which package did.
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -r "$requirements" \
    >"$venv/pip.log" 2>&1; then
    echo "installing tests/registry/requirements.txt failed; the end of $venv/pip.log:" >&2
    tail -n 30 "$venv/pip.log" >&2
    return 1
  fi
  touch "$venv/complete"
  echo "==> Python environment made in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s ($(du -sh "$venv" | cut -f1))" >&2
}

if [ ! -f "$venv/complete" ]; then
  mkdir -p "$KWB_CACHE/pyenv"
  # Concurrent callers (parallel tests) wait for the one that makes it.
  (
    flock 9
    [ -f "$venv/complete" ] || make_venv
  ) 9>"$venv.lock"
fi
echo "$venv/bin/python"
