#!/usr/bin/env bash
# Side-by-side on this machine, in one run:
#   - redis-benchmark (SET/GET, 256-byte values, 50 clients, with and without -P 16)
#     against the Aegis three-node cluster (`aegis dev`, durable: fsync on a quorum)
#     and against one redis-server with appendonly yes + appendfsync always;
#   - `etcdctl check perf --load=l` against a three-node etcd on loopback.
# Prints one table: successful replies per second (error replies, read from the
# servers' own counters, are shown apart and never counted), p99, the servers' CPU per
# SET (user+system from /proc), through the leader and through a follower; and ratios.
# Installs redis-server, redis-tools, etcd-server and etcd-client from Debian if
# missing. Everything runs on 127.0.0.1.
#
# Usage: bench/compare.sh [-n REQUESTS] [--skip-etcd]
#   AEGIS_BIN=PATH bench/compare.sh   measures that aegis binary (an A/B of two builds)
#                                     instead of building .build/release/aegis
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000
SKIP_ETCD=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N="$2"; shift 2 ;;
    --skip-etcd) SKIP_ETCD=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

need=()
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
[ "$SKIP_ETCD" = 1 ] || command -v etcd >/dev/null || need+=(etcd-server)
[ "$SKIP_ETCD" = 1 ] || command -v etcdctl >/dev/null || need+=(etcd-client)
if [ ${#need[@]} -gt 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
fi

[ -n "${AEGIS_BIN:-}" ] || swift build -c release --product aegis >/dev/null

# Every port the run listens on must be free: a cluster already on them would answer
# in place of the one measured here (and its CPU would not be counted).
busy=()
for port in 7001 7002 7003 8001 8002 8003 9001 9002 9003 7100; do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && busy+=("$port")
done
if [ ${#busy[@]} -gt 0 ]; then
  echo "ports in use on 127.0.0.1: ${busy[*]} (another aegis dev or redis-server?); stop it first" >&2
  exit 1
fi
AEGIS="${AEGIS_BIN:-$PWD/.build/release/aegis}"
echo "aegis binary: $AEGIS"
WORK=$(mktemp -d /tmp/aegis-compare-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Runs one redis-benchmark test (set or get) against a port and prints
# "successful_rps p99_ms errors cpu_us_per_successful_op". redis-benchmark counts an
# error reply as a request: the errors are read from the server's own counters
# (`$ERRORS` names a function printing the total so far) and taken out of the
# throughput. CPU is the servers' user+system time from /proc (`$SERVER_PIDS`).
bench_one() {
  local port=$1 test=$2; shift 2
  local errors_before cpu_before line rps p99 errors cpu_after
  errors_before=$($ERRORS)
  cpu_before=$(cpu_seconds $SERVER_PIDS)
  line=$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -n "$N" -c 50 -d 256 -r 100000 --csv "$@" 2>/dev/null |
    awk -F',' 'NR>1 { gsub(/"/,""); print $2, $7 }' | head -n 1 || true)
  cpu_after=$(cpu_seconds $SERVER_PIDS)
  errors=$(( $($ERRORS) - errors_before ))
  rps=${line%% *}; p99=${line##* }
  awk -v rps="${rps:-0}" -v p99="${p99:-0}" -v n="$N" -v e="$errors" -v c0="$cpu_before" -v c1="$cpu_after" 'BEGIN {
    ok = n - e; if (ok < 0) ok = 0
    printf "%d %s %d %s\n", rps * ok / n, p99, e, (ok > 0 ? sprintf("%.1f", (c1 - c0) * 1e6 / ok) : "n/a") }'
}

# User+system CPU seconds of the given processes, from /proc/PID/stat.
cpu_seconds() {
  local hz total=0 p
  hz=$(getconf CLK_TCK)
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    total=$(awk -v t="$total" -v hz="$hz" '{ sub(/^.*\) /, ""); print t + ($12 + $13) / hz }' "/proc/$p/stat")
  done
  echo "$total"
}

# Error replies so far: Aegis counts them per node (aegis_resp_errors_total on /metrics),
# Redis in INFO stats (total_error_replies).
aegis_errors() {
  local total=0 port n
  for port in 8001 8002 8003; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^aegis_resp_errors_total/ { s += $NF } END { printf "%d", s }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}
redis_errors() { redis-cli -p 7100 info stats | tr -d '\r' | awk -F: '/^total_error_replies/ { print $2 }'; }

# "set-line get-line" for one server and option set.
bench_pair() {
  local port=$1; shift
  echo "set $(bench_one "$port" set "$@")"
  echo "get $(bench_one "$port" get "$@")"
}

echo "setup: $(nproc) cores, $N requests per test, 50 clients, 256-byte values, keyspace 100000"

# --- Aegis: three nodes, writes acknowledged after fsync on a quorum.
# Plaintext (--no-tls) like the Redis and etcd runs it is compared with.
# The production election timeout (100 ticks = 1 s), not dev's 150 ms: at saturation
# on 2 cores, follower answers can lag past 150 ms and trigger elections mid-benchmark.
"$AEGIS" dev --data-dir "$WORK/aegis" --election-ticks 100 --no-tls > "$WORK/aegis-dev.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  leader=$(for p in 7001 7002 7003; do redis-cli -p $p info replication 2>/dev/null | grep -q '^aegis_role:leader' && echo $p; done | head -1) || true
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "${leader:-}" ] || { echo "aegis dev did not elect a leader"; cat "$WORK/aegis-dev.log"; exit 1; }
follower=$(for p in 7001 7002 7003; do if [ "$p" != "$leader" ]; then echo "$p"; fi; done | head -1) || true
# Matched by the subcommand and this run's directory, not the binary's name (AEGIS_BIN may be any path).
SERVER_PIDS=$(pgrep -f " serve .*$WORK" | tr '\n' ' ' || true)
[ -n "$SERVER_PIDS" ] || { echo "found no aegis serve processes under $WORK"; exit 1; }
ERRORS=aegis_errors
aegis_plain=$(bench_pair "$leader")
aegis_follower=$(bench_pair "$follower")
aegis_pipe=$(bench_pair "$leader" -P 16)
kill -INT "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()

# --- Redis: one server, every write fsynced before the reply.
redis-server --port 7100 --bind 127.0.0.1 --dir "$WORK" --appendonly yes --appendfsync always \
  --save "" --daemonize no > "$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do redis-cli -p 7100 ping >/dev/null 2>&1 && break; sleep 0.1; done
SERVER_PIDS=${PIDS[0]}
ERRORS=redis_errors
redis_plain=$(bench_pair 7100)
redis_pipe=$(bench_pair 7100 -P 16)
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()

# --- etcd: three members on loopback.
etcd_line="skipped"
if [ "$SKIP_ETCD" = 0 ]; then
  cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/etcd$i" \
      --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
      --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
      --initial-cluster "$cluster" --initial-cluster-state new > "$WORK/etcd$i.log" 2>&1 &
    PIDS+=($!)
  done
  eps="http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"
  for _ in $(seq 1 100); do ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  perf=$(ETCDCTL_API=3 etcdctl --endpoints "$eps" check perf --load=l 2>&1 || true)
  echo "$perf" > "$WORK/etcd-perf.txt"
  # "PASS: Throughput is N writes/s" or "FAIL: Throughput too low: N writes/s".
  etcd_tput=$(echo "$perf" | grep -oE '[0-9]+ writes/s' | grep -oE '^[0-9]+' | head -1 || true)
  etcd_tput=${etcd_tput:-0}
  etcd_slowest=$(echo "$perf" | grep -o 'Slowest request took [0-9.]*' | grep -o '[0-9.]*$' || echo "?")
  etcd_line="$etcd_tput writes/s (slowest request ${etcd_slowest} s)"
fi

get() { echo "$1" | awk -v t="$2" -v f="$3" '$1==t { print $f }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() {
  printf '%-36s %10s %9s %7s %10s %9s %7s %12s\n' "$1" "$(get "$2" set 2)" "$(get "$2" set 3)ms" "$(get "$2" set 4)" \
    "$(get "$2" get 2)" "$(get "$2" get 3)ms" "$(get "$2" get 4)" "$(get "$2" set 5)"
}

echo
echo "ops/s count successful replies only; errors are the error replies the servers counted (not in ops/s);"
echo "CPU is the servers' user+system time (all Aegis processes together) per successful SET."
printf '%-36s %10s %9s %7s %10s %9s %7s %12s\n' "system / test" "SET ops/s" "SET p99" "errors" "GET ops/s" "GET p99" "errors" "CPU us/SET"
row "aegis (3 nodes, quorum fsync)" "$aegis_plain"
row "aegis through a follower" "$aegis_follower"
row "aegis -P 16" "$aegis_pipe"
row "redis (1 node, appendfsync always)" "$redis_plain"
row "redis -P 16" "$redis_pipe"
printf '%-36s %s\n' "etcd (3 nodes) check perf --load=l" "$etcd_line"
echo
echo "ratios: aegis/redis SET $(ratio "$(get "$aegis_plain" set 2)" "$(get "$redis_plain" set 2)"), GET $(ratio "$(get "$aegis_plain" get 2)" "$(get "$redis_plain" get 2)"); follower/leader SET $(ratio "$(get "$aegis_follower" set 2)" "$(get "$aegis_plain" set 2)"); with -P 16 SET $(ratio "$(get "$aegis_pipe" set 2)" "$(get "$redis_pipe" set 2)")"
if [ "$SKIP_ETCD" = 0 ]; then
  echo "ratio: aegis SET / etcd writes $(ratio "$(get "$aegis_plain" set 2)" "${etcd_tput:-0}")"
fi
