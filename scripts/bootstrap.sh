# Sourced by scripts/run and scripts/test: install what is missing, idempotently.
#  - Debian/Ubuntu packages: mosquitto, PostgreSQL server, python3-venv (with sudo when not root),
#    and, for the test command, chromium and the programs tests call (mosquitto-clients, psql, openssl, ip)
#  - .venv with the project and its dev extras (reinstalled only when pyproject.toml changes)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then missing+=(mosquitto); fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# Programs the tests and benchmarks call (grep subprocess calls when adding one): command -> Debian package.
# Only the test command needs them.
if [ "${BOOTSTRAP_FOR_TESTS:-0}" = 1 ]; then
  for pair in chromium:chromium mosquitto_sub:mosquitto-clients mosquitto_pub:mosquitto-clients \
              psql:postgresql-client openssl:openssl ip:iproute2; do
    cmd="${pair%%:*}" pkg="${pair#*:}"
    if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! " ${missing[*]} " =~ " $pkg " ]]; then missing+=("$pkg"); fi
  done
fi
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "bootstrap: Python >= 3.11 is required (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=("python3-venv"); fi
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: missing ${missing[*]} and no apt-get here: install them with your package manager" >&2
    exit 2
  fi
  echo "bootstrap: installing ${missing[*]} from the distribution's packages ..." >&2
  _sudo apt-get update -qq
  _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv ..." >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv ..." >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e ".[dev]" >&2
  rm -f .venv/.installed-* && touch "$stamp"
fi

# The tests' second, real OPA engine (OPA's Go rego package in the opa-golib-python-bindings wheel): downloaded
# from PyPI by pinned version and hash, unpacked (not installed: the wheel asks for Python 3.14, its library
# loads through ctypes on 3.11). tests/policy/real_opa.py loads it from here.
if [ "${BOOTSTRAP_FOR_TESTS:-0}" = 1 ]; then
  opa_stamp=".venv/real-opa/.unpacked-$(sha256sum scripts/real-opa.txt | cut -c1-16)"
  if [ ! -f "$opa_stamp" ]; then
    echo "bootstrap: downloading the real OPA engine for the tests (opa-golib-python-bindings) ..." >&2
    rm -rf .venv/real-opa && mkdir -p .venv/real-opa/wheel
    .venv/bin/python -m pip download -q --no-deps --require-hashes --only-binary=:all: --python-version 3.14 \
      -r scripts/real-opa.txt -d .venv/real-opa/wheel >&2
    .venv/bin/python -m zipfile -e .venv/real-opa/wheel/*.whl .venv/real-opa/lib
    touch "$opa_stamp"
  fi
fi

# The third-party Sparkplug B edge node (Eclipse Tahu's JavaScript client from the npm registry, pinned with its
# dependencies in devstack/sparkplug_edge/package-lock.json) that the Sparkplug tests and `./scripts/run --sparkplug` run with Node.js.
if [ "${BOOTSTRAP_FOR_TESTS:-0}" = 1 ] || [ "${BOOTSTRAP_SPARKPLUG:-0}" = 1 ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: the Sparkplug edge node needs Node.js (>= 18) and npm: install them (apt-get install nodejs npm)" >&2
    exit 2
  fi
  spb_stamp=".venv/sparkplug-edge/.installed-$(cat devstack/sparkplug_edge/package.json \
    devstack/sparkplug_edge/package-lock.json | sha256sum | cut -c1-16)"
  if [ ! -f "$spb_stamp" ]; then
    echo "bootstrap: installing the Sparkplug B edge node (sparkplug-client, sparkplug-payload) ..." >&2
    rm -rf .venv/sparkplug-edge && mkdir -p .venv/sparkplug-edge
    cp devstack/sparkplug_edge/package.json devstack/sparkplug_edge/package-lock.json .venv/sparkplug-edge/
    npm ci --prefix .venv/sparkplug-edge --no-audit --no-fund --loglevel=error >&2
    touch "$spb_stamp"
  fi
fi
