#!/usr/bin/env bash
# compose/services.sh — start or stop the real Kafka and RabbitMQ that the
# integration tests and the README use, on a machine without Docker.
#
# Usage: compose/services.sh start|stop|status
#
#   start   compose/kafka.sh start, then compose/rabbitmq.sh start (each is
#           idempotent and waits until its service accepts clients).
#   stop    stops both; exits non-zero if either could not be stopped.
#   status  exit 0 only if both run.
#
# Both scripts read their own EVENTMODEL_* variables (see their headers);
# clients then use kafka://127.0.0.1:9092 and amqp://guest:guest@127.0.0.1:5672//.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case ${1:-} in
  start)
    t0=${EPOCHREALTIME:-$(date +%s)}
    "$here/kafka.sh" start
    "$here/rabbitmq.sh" start
    echo "services.sh: Kafka and RabbitMQ started in $(awk -v a="$t0" -v b="${EPOCHREALTIME:-$(date +%s)}" 'BEGIN { printf "%.1f", b - a }') s"
    ;;
  stop)
    rc=0
    "$here/rabbitmq.sh" stop || rc=1
    "$here/kafka.sh" stop || rc=1
    exit "$rc"
    ;;
  status)
    rc=0
    "$here/kafka.sh" status || rc=3
    "$here/rabbitmq.sh" status || rc=3
    exit "$rc"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
