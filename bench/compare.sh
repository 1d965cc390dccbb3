#!/usr/bin/env bash
# Side-by-side on this machine, in one run:
#   - redis-benchmark (SET/GET, 256-byte values, 50 clients, with and without -P 16)
#     against the Aegis three-node cluster (`aegis dev`, durable: fsync on a quorum)
#     and against one redis-server with appendonly yes + appendfsync always;
#   - `etcdctl check perf --load=l` against a three-node etcd on loopback.
# Prints one table with throughput, p99 and ratios. Installs redis-server, redis-tools,
# etcd-server and etcd-client from Debian if missing. Everything runs on 127.0.0.1.
#
# Usage: bench/compare.sh [-n REQUESTS] [--skip-etcd]
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

swift build -c release --product aegis >/dev/null
AEGIS="$PWD/.build/release/aegis"
WORK=$(mktemp -d /tmp/aegis-compare-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Runs redis-benchmark and prints "rps p99" for each test (set, get).
bench() {
  local port=$1; shift
  redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$N" -c 50 -d 256 -r 100000 --csv "$@" 2>/dev/null |
    awk -F',' 'NR>1 { gsub(/"/,""); print tolower($1), $2, $7 }' || true
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
aegis_plain=$(bench "$leader")
aegis_pipe=$(bench "$leader" -P 16)
kill -INT "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()

# --- Redis: one server, every write fsynced before the reply.
redis-server --port 7100 --bind 127.0.0.1 --dir "$WORK" --appendonly yes --appendfsync always \
  --save "" --daemonize no > "$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do redis-cli -p 7100 ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_plain=$(bench 7100)
redis_pipe=$(bench 7100 -P 16)
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

printf '\n%-34s %12s %10s %12s %10s\n' "system / test" "SET ops/s" "SET p99" "GET ops/s" "GET p99"
printf '%-34s %12s %10s %12s %10s\n' "aegis (3 nodes, quorum fsync)" "$(get "$aegis_plain" set 2)" "$(get "$aegis_plain" set 3)ms" "$(get "$aegis_plain" get 2)" "$(get "$aegis_plain" get 3)ms"
printf '%-34s %12s %10s %12s %10s\n' "aegis -P 16" "$(get "$aegis_pipe" set 2)" "$(get "$aegis_pipe" set 3)ms" "$(get "$aegis_pipe" get 2)" "$(get "$aegis_pipe" get 3)ms"
printf '%-34s %12s %10s %12s %10s\n' "redis (1 node, appendfsync always)" "$(get "$redis_plain" set 2)" "$(get "$redis_plain" set 3)ms" "$(get "$redis_plain" get 2)" "$(get "$redis_plain" get 3)ms"
printf '%-34s %12s %10s %12s %10s\n' "redis -P 16" "$(get "$redis_pipe" set 2)" "$(get "$redis_pipe" set 3)ms" "$(get "$redis_pipe" get 2)" "$(get "$redis_pipe" get 3)ms"
printf '%-34s %s\n' "etcd (3 nodes) check perf --load=l" "$etcd_line"
echo
echo "ratios: aegis/redis SET $(ratio "$(get "$aegis_plain" set 2)" "$(get "$redis_plain" set 2)"), GET $(ratio "$(get "$aegis_plain" get 2)" "$(get "$redis_plain" get 2)"); with -P 16 SET $(ratio "$(get "$aegis_pipe" set 2)" "$(get "$redis_pipe" set 2)")"
if [ "$SKIP_ETCD" = 0 ]; then
  echo "ratio: aegis SET / etcd writes $(ratio "$(get "$aegis_plain" set 2)" "${etcd_tput:-0}")"
fi
