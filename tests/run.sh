#!/usr/bin/env bash
# The whole test suite, as a new user or CI runs it: installs the project and its
# test dependencies, starts Kafka and RabbitMQ on loopback (compose/services.sh),
# runs pytest (arguments are passed on), and stops the services again. The page test
# drives Debian's chromium through chromium-driver: installed with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

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

python3 -m pytest -p no:cacheprovider "$@"
