#!/usr/bin/env bash
# compose/demo.sh — the README's first command: installs the checkout with the sim
# extra into a virtual environment (compose/env.sh: the active one, else the project's
# .venv) and runs `eventmodel demo` with the arguments given, in the current folder
# (its log, eventmodel-demo.db, is written there).
#
# Usage: bash compose/demo.sh [eventmodel demo options]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
em_install sim
exec eventmodel demo "$@"
