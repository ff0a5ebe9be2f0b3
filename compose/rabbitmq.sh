#!/usr/bin/env bash
# compose/rabbitmq.sh — run Debian's RabbitMQ (package rabbitmq-server, 3.10 on
# bookworm) on 127.0.0.1 without Docker or systemd, for tests and the README.
#
# Usage: compose/rabbitmq.sh start|stop|status
#
#   start   install rabbitmq-server with apt-get if it is missing (needs root;
#           the package's attempt to start the service is refused through
#           policy-rc.d, since there is no init system to run it), then run
#           `rabbitmq-server -detached` (Debian's wrapper drops to the
#           rabbitmq user) and wait until the node answers `ping`,
#           `rabbitmqctl await_startup` returns and AMQP accepts connections.
#           Idempotent: if the node already runs, says so and exits 0.
#   stop    `rabbitmqctl stop <pidfile>` (waits for the VM to exit); exits 0
#           if not running. Stops epmd too if no other Erlang node uses it.
#   status  exit 0 if the node answers ping, 3 if not.
#
# Environment (defaults in brackets):
#   EVENTMODEL_RABBITMQ_PORT           [5672]  AMQP port, bound to 127.0.0.1
#   EVENTMODEL_RABBITMQ_NODENAME       [rabbit@localhost] Erlang node name
#                                      (localhost, so a host name that does not
#                                      resolve cannot break the node)
#   EVENTMODEL_RABBITMQ_START_TIMEOUT  [120]   seconds to wait for readiness
#
# Clients use amqp://guest:guest@127.0.0.1:5672// — guest may only log in
# from loopback, which is what this is. To use rabbitmqctl by hand, pass the
# node name: rabbitmqctl -n rabbit@localhost list_queues
set -euo pipefail

PORT=${EVENTMODEL_RABBITMQ_PORT:-5672}
NODENAME=${EVENTMODEL_RABBITMQ_NODENAME:-rabbit@localhost}
TIMEOUT=${EVENTMODEL_RABBITMQ_START_TIMEOUT:-120}

# Read by rabbitmq-server, rabbitmqctl and rabbitmq-diagnostics (Debian's
# wrapper runs them through `su rabbitmq`, which keeps the environment).
export RABBITMQ_NODENAME=$NODENAME
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$PORT
export RABBITMQ_PID_FILE=/var/lib/rabbitmq/mnesia/$NODENAME.pid
# Keep epmd and Erlang distribution (CLI tools) on loopback as well.
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export PATH=$PATH:/usr/sbin:/sbin

NODE_LOG=/var/log/rabbitmq/$NODENAME.log
CRASH_DUMP=/var/lib/rabbitmq/erl_crash.dump
START_OUT=/var/log/rabbitmq/eventmodel-start.out

say() { echo "rabbitmq.sh: $*"; }
die() { echo "rabbitmq.sh: ERROR: $*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ping_node() { rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
node_pid() {
  local pid
  [[ -f $RABBITMQ_PID_FILE ]] || return 1
  pid=$(<"$RABBITMQ_PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -d /proc/$pid ]] || return 1
  echo "$pid"
}

# Byte offset of the node log when this start began: only newer lines are shown.
NODE_LOG_OFFSET=0

show_logs() {
  if [[ -s $START_OUT ]]; then
    echo "----- $START_OUT -----" >&2
    tail -n 40 "$START_OUT" | cut -c1-500 >&2
  fi
  if [[ -s $NODE_LOG && $(stat -c %s "$NODE_LOG") -gt $NODE_LOG_OFFSET ]]; then
    echo "----- last 40 lines of $NODE_LOG (this start) -----" >&2
    tail -c +$((NODE_LOG_OFFSET + 1)) "$NODE_LOG" | tail -n 40 | cut -c1-500 >&2
  fi
  if [[ -f $CRASH_DUMP ]]; then
    echo "----- Erlang crash dump $CRASH_DUMP -----" >&2
    grep -m 1 '^Slogan:' "$CRASH_DUMP" | cut -c1-1000 >&2 || true
  fi
}

need_root() {
  [[ $(id -u) == 0 ]] || [[ $(id -un) == rabbitmq ]] ||
    die "run this as root (sudo $0 ${1:-start}); Debian's rabbitmq tools only run as root or rabbitmq"
}

POLICY_RC_CREATED=
cleanup_policy_rc() { [[ -z $POLICY_RC_CREATED ]] || rm -f /usr/sbin/policy-rc.d; }

install_rabbitmq() {
  if [[ -x /usr/sbin/rabbitmq-server ]] &&
    dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null | grep -q 'install ok installed'; then
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "rabbitmq-server is not installed and installing it needs root"
  local t0
  t0=$(now)
  # No init system runs here: forbid the package's postinst from starting the
  # service (invoke-rc.d honours policy-rc.d exit code 101); we start it.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from eventmodel compose/rabbitmq.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
    trap cleanup_policy_rc EXIT
  fi
  say "installing rabbitmq-server with apt-get ..."
  local log=/tmp/eventmodel-rabbitmq-apt.log
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server; } >"$log" 2>&1; then
    # A postinst that failed (e.g. it tried to start the service) leaves the
    # package half-configured; try to finish configuring it once.
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$log" 2>&1 || true
    if ! dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null | grep -q 'install ok installed'; then
      tail -n 30 "$log" >&2
      die "apt-get install rabbitmq-server failed (full output: $log)"
    fi
  fi
  cleanup_policy_rc
  POLICY_RC_CREATED=
  say "installed $(dpkg-query -W -f='${Version}' rabbitmq-server) in $(elapsed "$t0") s"
}

cmd_start() {
  local t0 deadline pid remaining
  t0=$(now)
  need_root start
  install_rabbitmq
  if ping_node; then
    say "already running ($NODENAME, amqp://127.0.0.1:$PORT)"
    return 0
  fi
  if pid=$(node_pid); then
    say "node process $pid exists but does not answer ping yet; waiting for it"
  else
    port_open "$PORT" && die "port $PORT on 127.0.0.1 is in use by another process (another RabbitMQ node?); set EVENTMODEL_RABBITMQ_PORT"
    mkdir -p /var/log/rabbitmq
    NODE_LOG_OFFSET=$(stat -c %s "$NODE_LOG" 2>/dev/null || echo 0)
    # A VM that dies during boot writes a crash dump: move an old one aside
    # so that a new one means this start failed.
    [[ ! -f $CRASH_DUMP ]] || mv -f "$CRASH_DUMP" "$CRASH_DUMP.prev"
    say "starting $(dpkg-query -W -f='rabbitmq-server ${Version}' rabbitmq-server) as node $NODENAME on 127.0.0.1:$PORT"
    if ! rabbitmq-server -detached >"$START_OUT" 2>&1; then
      show_logs
      die "rabbitmq-server -detached failed"
    fi
  fi
  deadline=$((SECONDS + TIMEOUT))
  # 1. the node answers ping (each call is a short-lived Erlang CLI VM).
  until ping_node; do
    if ((SECONDS >= deadline)); then
      show_logs
      die "node $NODENAME did not answer ping within $TIMEOUT s"
    fi
    # A crash dump, or a pid file whose process is gone: the boot failed.
    if [[ -f $CRASH_DUMP ]] || { [[ -f $RABBITMQ_PID_FILE ]] && ! node_pid >/dev/null; }; then
      sleep 0.5
      ping_node && break
      show_logs
      die "the RabbitMQ node exited during startup"
    fi
    sleep 0.5
  done
  # 2. all of the node's applications and plugins have started.
  remaining=$((deadline - SECONDS))
  ((remaining > 0)) || remaining=1
  if ! rabbitmqctl -q await_startup --timeout "$remaining" >/dev/null 2>"$START_OUT.ctl"; then
    cat "$START_OUT.ctl" >&2
    show_logs
    die "rabbitmqctl await_startup failed"
  fi
  # 3. the AMQP listener accepts connections.
  until port_open "$PORT"; do
    if ((SECONDS >= deadline)); then
      show_logs
      die "AMQP port 127.0.0.1:$PORT did not accept connections within $TIMEOUT s"
    fi
    sleep 0.2
  done
  say "started in $(elapsed "$t0") s (node $NODENAME, amqp://guest:guest@127.0.0.1:$PORT//, log $NODE_LOG)"
}

stop_epmd_if_unused() {
  command -v epmd >/dev/null || return 0
  local names
  names=$(epmd -names 2>/dev/null) || return 0
  grep -q '^name ' <<<"$names" || epmd -kill >/dev/null 2>&1 || true
}

cmd_stop() {
  local t0 pid i
  t0=$(now)
  need_root stop
  if [[ ! -x /usr/sbin/rabbitmqctl ]]; then
    say "not installed, not running"
    return 0
  fi
  if ! ping_node && ! pid=$(node_pid); then
    say "not running"
    stop_epmd_if_unused
    return 0
  fi
  say "stopping node $NODENAME"
  if ! rabbitmqctl -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
    # The node did not take the stop command (e.g. still booting): signal it.
    if pid=$(node_pid); then
      say "rabbitmqctl stop failed; sending SIGTERM to $pid"
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 300; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
      if [[ -d /proc/$pid ]]; then
        say "still running after 30 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  fi
  stop_epmd_if_unused
  say "stopped in $(elapsed "$t0") s"
}

cmd_status() {
  if [[ -x /usr/sbin/rabbitmqctl ]] && ping_node; then
    say "running (node $NODENAME, amqp://127.0.0.1:$PORT)"
    return 0
  fi
  # The CLI VM of ping starts epmd as a side effect; leave things as found.
  stop_epmd_if_unused
  say "not running"
  return 3
}

# Serialise concurrent start/stop calls (several test runs may share one
# machine). flock -o holds the lock itself and closes it for the script, so
# the detached node and epmd do not inherit it.
if [[ ${1:-} == @(start|stop) && -z ${EVENTMODEL_RABBITMQ_LOCKED:-} ]] && command -v flock >/dev/null; then
  export EVENTMODEL_RABBITMQ_LOCKED=1
  exec flock -o "/tmp/eventmodel-rabbitmq-$PORT.lock" bash "$0" "$@"
fi

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
