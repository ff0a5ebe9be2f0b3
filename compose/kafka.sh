#!/usr/bin/env bash
# compose/kafka.sh — run a single-node Apache Kafka broker (KRaft, combined
# broker+controller) on 127.0.0.1 without Docker, for tests and the README.
#
# Usage: compose/kafka.sh start|stop|status|wait
#
#   start   resolve Apache Kafka's own broker jars (org.apache.kafka:kafka_2.13
#           and its runtime dependencies, plus a log4j2 binding) from Maven
#           Central into the cache ONCE, format the storage ONCE, start the
#           broker in the background and wait until it accepts clients.
#           Idempotent: if the broker already runs, says so and exits 0.
#   stop    SIGTERM, wait up to 30 s, then SIGKILL. Exits 0 if not running.
#   status  exit 0 if the broker runs, 3 if not.
#   wait    wait (with the start deadline) until the running broker accepts
#           clients.
#
# Environment (defaults in brackets):
#   EVENTMODEL_KAFKA_VERSION          [4.4.0] Kafka version; if it does not
#                                     resolve, older 4.x versions are tried.
#   EVENTMODEL_KAFKA_PORT             [9092]  PLAINTEXT listener (127.0.0.1)
#   EVENTMODEL_KAFKA_CONTROLLER_PORT  [9093]  CONTROLLER listener (127.0.0.1)
#   EVENTMODEL_CACHE                  [$HOME/.cache/eventmodel]
#   EVENTMODEL_KAFKA_DATA             [$EVENTMODEL_CACHE/kafka-data-$PORT]
#   EVENTMODEL_KAFKA_START_TIMEOUT    [90]    seconds to wait for readiness
#   EVENTMODEL_KAFKA_AUTO_CREATE      [false] auto.create.topics.enable
#   EVENTMODEL_KAFKA_HEAP             [512m]  -Xmx of the broker JVM
#   EVENTMODEL_KAFKA_RETENTION_CHECK_MS [300000] log.retention.check.interval.ms
#                                     (and log.initial.task.delay.ms, capped
#                                     at 30000): how soon expired segments go;
#                                     the retention test runs a broker with 500
#
# Choices: auto.create.topics.enable=false by default — the event log topic
# must be created explicitly by the log backend (with the retention an event
# log needs); a typo'd topic name then fails loudly instead of silently
# creating an empty topic. log.retention.ms=-1: nothing on this broker
# expires, because the log is the source of truth. Durability: one broker, so
# replication 1 and min.insync.replicas=1 (a production cluster uses 3 and 2,
# see compose/docker-compose.yml and ADR 0006). The quorum is static
# (controller.quorum.voters=1@127.0.0.1:$CPORT), so the storage is formatted
# without --standalone.
#
# Layout: $EVENTMODEL_CACHE/kafka/<version>/jars/*.jar (resolved jars),
# $EVENTMODEL_CACHE/kafka/m2 (Maven's local repository), and in the data dir:
# server.properties, log4j2.xml, kraft/ (log.dirs), kafka.pid, server.log
# (log4j2) and stdout.log (JVM output).
set -euo pipefail

PORT=${EVENTMODEL_KAFKA_PORT:-9092}
CPORT=${EVENTMODEL_KAFKA_CONTROLLER_PORT:-9093}
CACHE=${EVENTMODEL_CACHE:-$HOME/.cache/eventmodel}
DATA=${EVENTMODEL_KAFKA_DATA:-$CACHE/kafka-data-$PORT}
REQUESTED=${EVENTMODEL_KAFKA_VERSION:-4.4.0}
TIMEOUT=${EVENTMODEL_KAFKA_START_TIMEOUT:-90}
AUTO_CREATE=${EVENTMODEL_KAFKA_AUTO_CREATE:-false}
HEAP=${EVENTMODEL_KAFKA_HEAP:-512m}
RETENTION_CHECK_MS=${EVENTMODEL_KAFKA_RETENTION_CHECK_MS:-300000}
INITIAL_DELAY_MS=$(( RETENTION_CHECK_MS < 30000 ? RETENTION_CHECK_MS : 30000 ))

# Tried in this order after the requested version (only older ones).
FALLBACK_VERSIONS="4.3.1 4.3.0 4.2.0 4.1.1 4.1.0 4.0.1 4.0.0"
LOG4J_VERSION=2.25.3
SLF4J_VERSION=2.0.17
DEP_PLUGIN_VERSION=3.8.1

KAFKA_CACHE=$CACHE/kafka
PIDFILE=$DATA/kafka.pid
LOGDIRS=$DATA/kraft
SERVER_LOG=$DATA/server.log
STDOUT_LOG=$DATA/stdout.log
PROPS=$DATA/server.properties
LOG4J_CONF=$DATA/log4j2.xml
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- process ---

# Prints the broker's pid if the pid file names a live broker of THIS data dir.
broker_pid() {
  [[ -f $PIDFILE ]] || return 1
  local pid
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  # Guard against a recycled pid: the command line must be our broker.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# One readiness probe: the broker answers a metadata request.
broker_ready() {
  if python3 -c 'import confluent_kafka' 2>/dev/null; then
    python3 - "$PORT" 2>/dev/null <<'EOF'
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": "127.0.0.1:" + sys.argv[1],
                 "socket.connection.setup.timeout.ms": 2000, "log_level": 0})
md = a.list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
EOF
  else
    port_open "$PORT" && grep -qE 'Kafka Server started|started \(kafka.server.KafkaRaftServer\)' "$SERVER_LOG" 2>/dev/null
  fi
}

# Byte offset of server.log when this start began: only newer lines are shown.
SERVER_LOG_OFFSET=0

show_logs() {
  if [[ -s $SERVER_LOG && $(stat -c %s "$SERVER_LOG") -gt $SERVER_LOG_OFFSET ]]; then
    echo "----- last 40 lines of $SERVER_LOG (this start) -----" >&2
    tail -c +$((SERVER_LOG_OFFSET + 1)) "$SERVER_LOG" | tail -n 40 | cut -c1-500 >&2
  fi
  if [[ -s $STDOUT_LOG ]]; then
    echo "----- last 40 lines of $STDOUT_LOG -----" >&2
    tail -n 40 "$STDOUT_LOG" | cut -c1-500 >&2
  fi
}

# True while pid $1 exists and is not a zombie.
alive() {
  local _pid _comm state
  [[ -r /proc/$1/stat ]] || return 1
  read -r _pid _comm state _ 2>/dev/null <"/proc/$1/stat" || return 1
  [[ $state != Z ]]
}

# Wait until ready, failing early if the process dies.
# $1 = start timestamp, $2 = broker pid.
wait_ready() {
  local t0=$1 pid=$2 deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      show_logs
      die "the broker process (pid $pid) exited during startup (data dir $DATA)"
    fi
    if broker_ready; then
      say "broker ready on 127.0.0.1:$PORT after $(elapsed "$t0") s"
      return 0
    fi
    sleep 0.5
  done
  show_logs
  if [[ ${3:-} == kill-on-timeout ]]; then
    say "stopping the broker that did not become ready (pid $pid)"
    stop_pid "$pid"
  fi
  die "the broker did not accept clients on 127.0.0.1:$PORT within $TIMEOUT s (logs in $DATA)"
}

# ------------------------------------------------------------------- jars ---

count_jars() { local j=("$1"/*.jar); echo "${#j[@]}"; }

write_pom() { # $1 = version, $2 = pom path
  cat >"$2" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by compose/kafka.sh: the runtime class path of a Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>eventmodel.local</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>$1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$1</version>
    </dependency>
    <!-- kafka_2.13's pom names slf4j-api 1.7 and no binding; log through
         log4j2 like the Kafka 4.x distribution does (slf4j 2 + log4j2). -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$DEP_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

# Resolve one version into $KAFKA_CACHE/<version>/jars. Returns 1 if it fails.
resolve_version() {
  local v=$1 dir=$KAFKA_CACHE/$1
  [[ -f $dir/.complete ]] && return 0
  command -v mvn >/dev/null || apt_install mvn maven
  command -v mvn >/dev/null || die "mvn (Maven) is needed to resolve the Kafka jars; install it (apt-get install maven)"
  mkdir -p "$dir"
  write_pom "$v" "$dir/pom.xml"
  rm -rf "$dir/jars.tmp"
  say "resolving org.apache.kafka:kafka_2.13:$v and its runtime dependencies from Maven Central ..."
  if ! mvn -B -q -f "$dir/pom.xml" -Dmaven.repo.local="$KAFKA_CACHE/m2" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dir/jars.tmp" >"$dir/mvn.log" 2>&1; then
    say "kafka_2.13:$v did not resolve (full output: $dir/mvn.log):"
    { grep -m 1 -F '[ERROR]' "$dir/mvn.log" || tail -n 5 "$dir/mvn.log"; } | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-400 >&2
    rm -rf "$dir/jars.tmp"
    return 1
  fi
  rm -rf "$dir/jars"
  mv "$dir/jars.tmp" "$dir/jars"
  touch "$dir/.complete"
  say "resolved $v: $(count_jars "$dir/jars") jars in $dir/jars"
}

# Sets VERSION and JARS. The version a request resolved to is remembered, so
# a later start neither hits the network nor retries a missing version.
ensure_jars() {
  local marker=$KAFKA_CACHE/resolved-for-$REQUESTED v
  mkdir -p "$KAFKA_CACHE"
  if [[ -f $marker ]]; then
    v=$(<"$marker")
    if [[ -f $KAFKA_CACHE/$v/.complete ]]; then
      VERSION=$v JARS=$KAFKA_CACHE/$v/jars
      return 0
    fi
  fi
  local candidates=("$REQUESTED") f
  for f in $FALLBACK_VERSIONS; do
    if [[ $f != "$REQUESTED" && $(printf '%s\n%s\n' "$f" "$REQUESTED" | sort -V | head -n1) == "$f" ]]; then
      candidates+=("$f")
    fi
  done
  for v in "${candidates[@]}"; do
    if resolve_version "$v"; then
      [[ $v == "$REQUESTED" ]] || say "WARNING: Kafka $REQUESTED did not resolve; using $v"
      echo "$v" >"$marker"
      VERSION=$v JARS=$KAFKA_CACHE/$v/jars
      return 0
    fi
  done
  die "no Kafka version resolved (tried: ${candidates[*]}); see $KAFKA_CACHE/<version>/mvn.log"
}

# Java 17+ and Maven come with the machine; if one is missing and we are
# root, install it from Debian's packages.
apt_install() { # $1 = command that is missing, $2.. = packages
  local cmd=$1
  shift
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "$cmd not found; installing $* with apt-get ..."
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >/tmp/eventmodel-kafka-apt.log 2>&1 ||
      die "apt-get install $* failed (see /tmp/eventmodel-kafka-apt.log)"
  fi
}

# ----------------------------------------------------------------- config ---

write_config() {
  mkdir -p "$DATA" "$LOGDIRS"
  cat >"$PROPS" <<EOF
# Written by compose/kafka.sh (rewritten on every start). KRaft combined mode.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$LOGDIRS
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=$AUTO_CREATE
log.retention.ms=-1
log.retention.check.interval.ms=$RETENTION_CHECK_MS
log.initial.task.delay.ms=$INITIAL_DELAY_MS
min.insync.replicas=1
num.network.threads=2
num.io.threads=4
EOF
  cat >"$LOG4J_CONF" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by compose/kafka.sh: broker log to $SERVER_LOG -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="$SERVER_LOG" filePattern="$SERVER_LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

format_storage() {
  [[ -f $LOGDIRS/meta.properties ]] && return 0
  local id
  id=$("$JAVA" -cp "$JARS/*" kafka.tools.StorageTool random-uuid 2>>"$STDOUT_LOG" | tail -n1) ||
    die "kafka.tools.StorageTool random-uuid failed (see $STDOUT_LOG)"
  echo "$id" >"$DATA/cluster-id"
  say "formatting $LOGDIRS (cluster id $id)"
  "$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$JARS/*" kafka.tools.StorageTool \
    format -t "$id" -c "$PROPS" >>"$STDOUT_LOG" 2>&1 || {
    show_logs
    die "formatting the storage failed"
  }
}

check_java() {
  command -v "$JAVA" >/dev/null || apt_install java openjdk-17-jre-headless
  command -v "$JAVA" >/dev/null || die "java not found; Kafka 4.x needs Java 17+ (apt-get install openjdk-17-jre-headless)"
  local major
  major=$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
  [[ ${major%%.*} -ge 17 ]] || die "Kafka 4.x needs Java 17+, found $major ($JAVA)"
}

# --------------------------------------------------------------- commands ---

cmd_start() {
  local t0 pid
  t0=$(now)
  mkdir -p "$DATA"
  if pid=$(broker_pid); then
    say "already running (pid $pid) on 127.0.0.1:$PORT"
    wait_ready "$t0" "$pid"
    return 0
  fi
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "port $p on 127.0.0.1 is already in use by another process; set EVENTMODEL_KAFKA_PORT / EVENTMODEL_KAFKA_CONTROLLER_PORT"
  done
  check_java
  ensure_jars
  write_config
  : >"$STDOUT_LOG"
  SERVER_LOG_OFFSET=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
  format_storage
  say "starting Kafka $VERSION ($(count_jars "$JARS") jars) on 127.0.0.1:$PORT, controller 127.0.0.1:$CPORT, data $DATA"
  nohup "$JAVA" -Xmx"$HEAP" -Xms"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$DATA" \
    -cp "$JARS/*" kafka.Kafka "$PROPS" >>"$STDOUT_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  wait_ready "$t0" "$pid" kill-on-timeout
  say "started in $(elapsed "$t0") s (pid $pid, log $SERVER_LOG)"
}

# SIGTERM, up to 30 s for a clean shutdown, then SIGKILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "still running after 30 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

cmd_stop() {
  local pid t0
  t0=$(now)
  if ! pid=$(broker_pid); then
    say "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  say "stopping pid $pid (SIGTERM)"
  stop_pid "$pid"
  say "stopped in $(elapsed "$t0") s"
}

cmd_status() {
  local pid
  if pid=$(broker_pid); then
    say "running (pid $pid) on 127.0.0.1:$PORT, data $DATA"
    return 0
  fi
  say "not running"
  return 3
}

cmd_wait() {
  local pid
  pid=$(broker_pid) || die "not running (start it with: $0 start)"
  wait_ready "$(now)" "$pid"
}

# Serialise concurrent start/stop calls on the same data dir.
lock() {
  mkdir -p "$DATA"
  if command -v flock >/dev/null; then
    exec 9>"$DATA/.lock"
    flock 9
  fi
}

case ${1:-} in
  start) lock; cmd_start ;;
  stop) lock; cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  *) echo "usage: $0 start|stop|status|wait" >&2; exit 2 ;;
esac
