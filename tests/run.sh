#!/usr/bin/env bash
# The whole test suite, as a new user or CI runs it: installs the project and its
# test dependencies, starts Kafka and RabbitMQ on loopback (compose/services.sh),
# runs pytest (arguments are passed on), and stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

started=0
cleanup() { [ "$started" = 1 ] && bash compose/services.sh stop || true; }
trap cleanup EXIT
bash compose/services.sh start
started=1

python3 -m pytest -p no:cacheprovider "$@"
