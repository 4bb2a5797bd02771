#!/usr/bin/env bash
# Counts the user-space instructions each proxy spends per proxied request, with callgrind.
#
# Wall-clock CPU per request (bench/proxy.sh) swings by 2x between runs on a shared machine;
# instruction counts do not: the same binary and load give the same count whatever else the
# machine is doing. Kernel work (the TCP stack, ~half of a proxy's CPU on loopback) is not
# counted, so this isolates what a proxy's own code costs.
#
# Each proxy runs under `valgrind --tool=callgrind` with one worker, in front of two nginx
# backends serving 100 bytes; h2load sends N1 and then N2 HTTP/1.1 requests over 64 keep-alive
# connections in two separate runs, and (instructions(N2) - instructions(N1)) / (N2 - N1) is
# the per-request cost with start-up and shutdown cancelled out.
#
# Usage: bench/instructions.sh [--requests "2000 12000"] [--only nginx,haproxy,scalegate]
#                              [--skip-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
export PATH="$PATH:/usr/sbin:/sbin"
REQUESTS="2000 12000"
ONLY="nginx,haproxy,scalegate"
SKIP_BUILD=0
WORK_DIR=$(mktemp -d /tmp/scalegate-instructions.XXXXXX)
declare -a STARTED_PIDS=()

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

while [[ $# -gt 0 ]]; do
    case $1 in
        --requests) REQUESTS=${2:?}; shift 2 ;;
        --only) ONLY=${2:?}; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
read -r N1 N2 <<<"$REQUESTS"
[[ -n ${N2:-} && $N2 -gt $N1 ]] || die "--requests takes two counts, the second larger"
for tool in valgrind h2load nginx haproxy curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/test.sh installs the Debian packages; valgrind: apt-get install valgrind)"
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {
    local url=$1 deadline=$((SECONDS + 120))
    until curl -s -o /dev/null "$url"; do
        ((SECONDS < deadline)) || die "nothing answered on $url"
        sleep 0.2
    done
}

BODY=$(printf 'x%.0s' $(seq 100))
BACKENDS=()
for i in 1 2; do
    port=$(free_port)
    mkdir -p "$WORK_DIR/backend$i"
    cat >"$WORK_DIR/backend$i/nginx.conf" <<EOF
worker_processes 1;
pid $WORK_DIR/backend$i/nginx.pid;
error_log $WORK_DIR/backend$i/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$port; default_type text/plain; location / { return 200 '$BODY'; } }
}
EOF
    taskset -c 1 nginx -c "$WORK_DIR/backend$i/nginx.conf" -g 'daemon off;' &
    STARTED_PIDS+=($!)
    wait_ready "http://127.0.0.1:$port/"
    BACKENDS+=("$port")
done

if [[ $SKIP_BUILD == 0 ]] && selected scalegate; then
    log "building scalegate (release)"
    (cd "$REPO_ROOT" && cargo build --release --quiet)
fi

# proxy_command NAME PORT -> prints the command that runs proxy NAME on PORT
proxy_command() {
    local name=$1 port=$2 dir="$WORK_DIR/$1"
    mkdir -p "$dir"
    case $name in
        nginx)
            cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backends { server 127.0.0.1:${BACKENDS[0]}; server 127.0.0.1:${BACKENDS[1]}; keepalive 256; keepalive_requests 1000000; }
    server { listen 127.0.0.1:$port; location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
            echo "nginx -c $dir/nginx.conf"
            ;;
        haproxy)
            sed -e "s/@PORT@/$port/" -e "s/@BACKEND1@/${BACKENDS[0]}/" \
                -e "s/@BACKEND2@/${BACKENDS[1]}/" "$REPO_ROOT/bench/haproxy.cfg.tmpl" >"$dir/haproxy.cfg"
            echo "haproxy -db -f $dir/haproxy.cfg"
            ;;
        scalegate)
            sed -e "s/@MODE@/per_core/" -e "s/@PORT@/$port/" \
                -e "s/@BACKEND1@/${BACKENDS[0]}/" -e "s/@BACKEND2@/${BACKENDS[1]}/" \
                "$REPO_ROOT/bench/scalegate.yaml.tmpl" >"$dir/scalegate.yaml"
            echo "$REPO_ROOT/target/release/scalegate run -c $dir/scalegate.yaml"
            ;;
    esac
}

# instructions NAME N -> total Ir of the proxy process for N requests
instructions() {
    local name=$1 n=$2 port out command pid
    port=$(free_port)
    out="$WORK_DIR/$name.$n.callgrind"
    command=$(proxy_command "$name" "$port")
    # shellcheck disable=SC2086
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" $command \
        >"$WORK_DIR/$name.$n.log" 2>&1 &
    pid=$!
    wait_ready "http://127.0.0.1:$port/"
    taskset -c 1 h2load --h1 -n "$n" -c 64 -t 1 "http://127.0.0.1:$port/" >"$WORK_DIR/$name.$n.h2load"
    grep -q "succeeded, 0 failed, 0 errored" "$WORK_DIR/$name.$n.h2load" ||
        die "$name: requests failed: $(grep '^requests:' "$WORK_DIR/$name.$n.h2load")"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    grep -h '^summary:' "$out"* | awk '{s += $2} END {print s}'
}

printf '| proxy | instructions per request | vs nginx |\n|---|---:|---:|\n'
nginx_cost=""
for name in nginx haproxy scalegate; do
    selected "$name" || continue
    log "$name: $N1 and $N2 requests under callgrind"
    low=$(instructions "$name" "$N1")
    high=$(instructions "$name" "$N2")
    cost=$(((high - low) / (N2 - N1)))
    [[ $name == nginx ]] && nginx_cost=$cost
    ratio="-"
    [[ -n $nginx_cost ]] && ratio=$(python3 -c "print(f'{$cost / $nginx_cost:.2f}')")
    printf '| %s | %d | %s |\n' "$name" "$cost" "$ratio"
done
