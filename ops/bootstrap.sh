#!/usr/bin/env bash
# Installs everything Argus needs on a fresh machine, idempotently:
#   - redis-server, prometheus and mosquitto (MQTT broker) from Debian (if missing)
#   - .venv         the application's environment (numpy 2 is fine here), at the
#                   versions of ops/constraints.txt
#   - .venv-triton  the Triton server's environment (nvidia-pytriton's tritonserver
#                   binary + python backend, numpy 1.26, onnxruntime, OpenCV 4.10)
#   - .cache/kafka  the Apache Kafka broker jars, resolved from Maven Central
#   - .cache/models the model files (links into ../shared/models, else downloads)
# Downloads are cached (pip: ~/.cache/pip, Maven: ~/.m2); the results live in
# git-ignored folders of the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3.11}
log() { printf '[bootstrap] %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
# mosquitto lives in /usr/sbin, which is not on every user's PATH
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# the console's browser tests (tests/browser): Chromium and its WebDriver, from Debian
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: the stack runs its own.
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- application environment ----------------------------------------------
stamp=.venv/.argus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ops/constraints.txt -nt "$stamp" ]; then
  log "creating .venv (application)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # ops/constraints.txt: the tested versions (make constraints refreshes it)
  .venv/bin/pip install -q -c ops/constraints.txt -e '.[dev]'
  touch "$stamp"
fi

# --- Triton server environment -------------------------------------------
stamp=.venv-triton/.argus-installed
if [ ! -f "$stamp" ] || [ triton_models/requirements.txt -nt "$stamp" ]; then
  log "creating .venv-triton (Triton server + python backend)"
  [ -x .venv-triton/bin/python ] || "$PY" -m venv .venv-triton
  .venv-triton/bin/pip install -q --upgrade pip
  .venv-triton/bin/pip install -q -r triton_models/requirements.txt
  # Only the tritonserver binary and backends are needed, not PyTriton's Python API.
  .venv-triton/bin/pip install -q --no-deps nvidia-pytriton==0.7.0
  SP=$(.venv-triton/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  T=$SP/pytriton/tritonserver
  cp "$T/python_backend_stubs/3.11/triton_python_backend_stub" "$T/backends/python/"
  touch "$stamp"
fi

# --- Kafka broker jars -----------------------------------------------------
if [ ! -f .cache/kafka/.argus-installed ]; then
  log "resolving Apache Kafka from Maven Central"
  mkdir -p .cache/kafka/libs
  mvn -q -B -f ops/kafka/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$ROOT/.cache/kafka/libs" -DincludeScope=runtime
  touch .cache/kafka/.argus-installed
fi
# --- model files -----------------------------------------------------------
# Links into the shared mirror (ARGUS_SHARED, default ../shared), else downloads; checksums
# are cached, so a second run only stats the files.
log "resolving model files"
ARGUS_LOG_LEVEL=WARNING .venv/bin/python -m tools.cli models fetch >/dev/null
log "ready"
