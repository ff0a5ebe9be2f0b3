#!/usr/bin/env bash
# The whole test suite, as a new user or CI runs it: installs the project and its
# test dependencies into a virtual environment (compose/env.sh: the active one, else
# the project's .venv, created when missing; never the system Python), starts Kafka
# and RabbitMQ on loopback (compose/services.sh), runs pytest (arguments are passed
# on), and stops the services again. The page test drives Debian's chromium through
# chromium-driver: installed with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# exports VIRTUAL_ENV and PATH: pytest and every subprocess it starts (python3,
# sys.executable, eventmodel) run in that environment
. compose/env.sh
em_install test

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "run.sh: installing chromium and chromium-driver with apt-get ..."
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  { $sudo_ apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q chromium chromium-driver; } \
    >/tmp/eventmodel-apt-chromium.log 2>&1 \
    || { echo "run.sh: apt-get install chromium chromium-driver failed (see /tmp/eventmodel-apt-chromium.log)" >&2; exit 1; }
fi

started=0
cleanup() { [ "$started" = 1 ] && bash compose/services.sh stop || true; }
trap cleanup EXIT
bash compose/services.sh start
started=1

"$em_python" -m pytest -p no:cacheprovider "$@"
