#!/usr/bin/env bash
# Installs what kiln needs beyond the pinned Rust toolchain: the two cross
# targets (aarch64 devices, the wasm simulated device) and Debian packages
# (qemu-user runs aarch64 builds here; openssh-server is the stand-in device
# for flash tests; an aarch64 C compiler only for `cargo xtask sizes --vs-tract`,
# whose tract build assembles tract-linalg's ARM kernels; PostgreSQL's server
# binaries for the shared-journal tests, which start throwaway clusters of their
# own with initdb and pg_ctl as the `postgres` user). Safe to run again;
# needs root (or sudo) for apt-get.
set -euo pipefail
# from the clone's root, so rustup reads its rust-toolchain.toml wherever this is run from
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown aarch64-unknown-linux-musl

need=()
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# onnxruntime for the int8 comparisons (crates/quant/tests/ort.rs) and fixture scripts:
# a venv outside the clone with the pinned wheels from PyPI; .ci/run points
# KILN_ORT_PYTHON at its interpreter. Skipped when it already holds these versions.
ort_venv="${KILN_ORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/venv-ort}"
ort_pins=(onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6)
if ! "$ort_venv/bin/python" - "${ort_pins[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends python3-venv
  fi
  python3 -m venv "$ort_venv"
  "$ort_venv/bin/python" -m pip install -q "${ort_pins[@]}"
fi
echo "onnxruntime: $ort_venv/bin/python (the tests compare against it with"
echo "  KILN_ORT_PYTHON=$ort_venv/bin/python cargo test --workspace; without it they skip those comparisons)"
