#!/usr/bin/env bash
# Compares scalegate with nginx and HAProxy as HTTP/1.1 reverse proxies, in one run.
#
# Layout (2+ cores): every proxy under test runs alone on core 0 with one worker; wrk and two
# nginx backends (each answering every request with the same 100-byte body) share core 1.
# All proxies round-robin over both backends with keep-alive to them and no access log.
# Rounds are interleaved ([nginx, haproxy, scalegate, scalegate-mt] per round and
# connection count) so drift on the machine hits every proxy alike.
#
# For each run: wrk's req/s and p50/p99 latency, and the proxy's CPU time (utime+stime of the
# process and its children, from /proc) divided by the requests wrk completed. The table shows
# medians over rounds and ratios to nginx; bench/results/latest.md gets the same as markdown.
#
# Usage: bench/proxy.sh [--duration 10s] [--warmup 2s] [--rounds 3] [--connections "64 256"]
#                       [--only nginx,haproxy,scalegate,scalegate-mt] [--skip-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly ALL_PROXIES="nginx,haproxy,scalegate,scalegate-mt"
readonly PROXY_CORE=0
readonly LOAD_CORE=1
readonly BODY_BYTES=100
readonly READY_TIMEOUT_SECONDS=60
readonly STOP_TIMEOUT_SECONDS=10
export PATH="$PATH:/usr/sbin:/sbin"

DURATION=10s
WARMUP=2s
ROUNDS=3
CONNECTIONS="64 256"
ONLY=$ALL_PROXIES
SKIP_BUILD=0

WORK_DIR=""
declare -a STARTED_PIDS=()
declare -a TAKEN_PORTS=()
declare -A PROXY_PID=()
declare -A PROXY_PORT=()


parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
            --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
            --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
            --connections) CONNECTIONS=${2:?--connections needs a value}; shift 2 ;;
            --only) ONLY=${2:?--only needs a value}; shift 2 ;;
            --skip-build) SKIP_BUILD=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
    done
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
    local proxy conns
    for proxy in ${ONLY//,/ }; do
        [[ ,$ALL_PROXIES, == *,"$proxy",* ]] || die "unknown proxy '$proxy' (one of $ALL_PROXIES)"
    done
    for conns in $CONNECTIONS; do
        [[ $conns =~ ^[1-9][0-9]*$ ]] || die "--connections takes positive integers, got '$conns'"
    done
}


check_tools() {
    local -a missing=()
    local tool
    for tool in taskset wrk nginx haproxy curl ss getconf; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if selected scalegate || selected scalegate-mt; then
        command -v cargo >/dev/null 2>&1 || [[ $SKIP_BUILD == 1 ]] || missing+=(cargo)
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        die "missing tools: ${missing[*]} (scripts/test.sh installs them on Debian, or: apt-get install wrk nginx-light haproxy curl iproute2 util-linux)"
    fi
    local cores
    cores=$(getconf _NPROCESSORS_ONLN)
    [[ $cores -ge 2 ]] || die "needs at least 2 cores (proxy on core $PROXY_CORE, load on core $LOAD_CORE); this machine has $cores"
}

# --- processes -------------------------------------------------------------------------------

# Sets PORT to one nothing listens on, below the ephemeral range so outgoing connections
# cannot take it. (Not a $(...) function: TAKEN_PORTS must survive the call.)
free_port() {
    local port listening
    listening=$(ss -Htln | awk '{print $4}' | sed 's/.*://')
    while true; do
        port=$((20000 + RANDOM % 12000))
        if ! grep -qx "$port" <<<"$listening" && [[ " ${TAKEN_PORTS[*]} " != *" $port "* ]]; then
            TAKEN_PORTS+=("$port")
            PORT=$port
            return
        fi
    done
}


# wait_ready NAME PID URL : polls URL until it answers the 100-byte body, within a deadline.
wait_ready() {
    local name=$1 pid=$2 url=$3 logfile=$4 body=""
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    while [[ $SECONDS -lt $deadline ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "$name exited before it was ready (log above)"
        fi
        if body=$(curl -fsS --max-time 1 "$url" 2>/dev/null) && [[ ${#body} -eq $BODY_BYTES ]]; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "$name did not serve the ${BODY_BYTES}-byte body at $url within ${READY_TIMEOUT_SECONDS}s"
}

# --- configs ---------------------------------------------------------------------------------

start_backends() {
    local body i port conf
    body=$(printf 'x%.0s' $(seq "$BODY_BYTES"))
    BACKEND_PORTS=()
    for i in 1 2; do
        free_port
        port=$PORT
        conf=$(nginx_conf "backend$i" "
    server {
        listen 127.0.0.1:$port reuseport backlog=4096;
        default_type text/plain;
        location / { return 200 '$body'; }
    }")
        start_nginx "backend$i" "$LOAD_CORE" "$conf"
        wait_ready "backend$i" "$LAST_PID" "http://127.0.0.1:$port/" "$WORK_DIR/backend$i/error.log"
        BACKEND_PORTS+=("$port")
    done
    log "backends: nginx on 127.0.0.1:${BACKEND_PORTS[0]} and :${BACKEND_PORTS[1]} (core $LOAD_CORE)"
}

start_proxy_nginx() {
    local port=$1 conf
    conf=$(nginx_conf proxy-nginx "
    upstream backends {
        server 127.0.0.1:${BACKEND_PORTS[0]};
        server 127.0.0.1:${BACKEND_PORTS[1]};
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }")
    start_nginx proxy-nginx "$PROXY_CORE" "$conf"
}

start_proxy_haproxy() {
    local port=$1 conf="$WORK_DIR/haproxy.cfg"
    sed -e "s/@PORT@/$port/" -e "s/@BACKEND1@/${BACKEND_PORTS[0]}/" \
        -e "s/@BACKEND2@/${BACKEND_PORTS[1]}/" "$REPO_ROOT/bench/haproxy.cfg.tmpl" >"$conf"
    haproxy -c -q -f "$conf" || die "haproxy rejected $conf"
    start "$PROXY_CORE" "$WORK_DIR/proxy-haproxy.log" haproxy -db -f "$conf"
}

# start_proxy_scalegate PORT MODE
start_proxy_scalegate() {
    local port=$1 mode=$2 conf="$WORK_DIR/scalegate-$2.yaml"
    sed -e "s/@MODE@/$mode/" -e "s/@PORT@/$port/" \
        -e "s/@BACKEND1@/${BACKEND_PORTS[0]}/" -e "s/@BACKEND2@/${BACKEND_PORTS[1]}/" \
        "$REPO_ROOT/bench/scalegate.yaml.tmpl" >"$conf"
    start "$PROXY_CORE" "$WORK_DIR/proxy-scalegate-$mode.log" \
        "$REPO_ROOT/target/release/scalegate" run -c "$conf"
}

start_proxies() {
    local proxy port logfile
    for proxy in ${ONLY//,/ }; do
        free_port
        port=$PORT
        case $proxy in
            nginx) start_proxy_nginx "$port"; logfile="$WORK_DIR/proxy-nginx/error.log" ;;
            haproxy) start_proxy_haproxy "$port"; logfile="$WORK_DIR/proxy-haproxy.log" ;;
            scalegate)
                start_proxy_scalegate "$port" per_core
                logfile="$WORK_DIR/proxy-scalegate-per_core.log" ;;
            scalegate-mt)
                start_proxy_scalegate "$port" multi_thread
                logfile="$WORK_DIR/proxy-scalegate-multi_thread.log" ;;
        esac
        wait_ready "$proxy" "$LAST_PID" "http://127.0.0.1:$port/" "$logfile"
        PROXY_PID[$proxy]=$LAST_PID
        PROXY_PORT[$proxy]=$port
        log "$proxy: 127.0.0.1:$port, pid $LAST_PID (core $PROXY_CORE)"
    done
}

# --- measuring -------------------------------------------------------------------------------


# wrk latency ("812.00us", "1.23ms", "2.01s") to microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /s$/) f = 1000000; else f = 1
        printf "%.0f", n * f
    }'
}

# run_one PROXY CONNS ROUND : warm-up, measured wrk run, appends a row to RAW.
run_one() {
    local proxy=$1 conns=$2 round=$3
    local url="http://127.0.0.1:${PROXY_PORT[$proxy]}/" pid=${PROXY_PID[$proxy]}
    local out before after requests rps p50 p99 errors cpu_us
    kill -0 "$pid" 2>/dev/null || die "$proxy (pid $pid) has exited; see its log in $WORK_DIR"
    taskset -c "$LOAD_CORE" wrk -t1 -c"$conns" -d"$WARMUP" "$url" >/dev/null
    before=$(tree_ticks "$pid")
    out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$conns" -d"$DURATION" --latency "$url")
    after=$(tree_ticks "$pid")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errors=$(awk '/Socket errors:/ {gsub(",", ""); e += $4 + $6 + $8 + $10}
                  /Non-2xx/ {e += $NF} END {print e + 0}' <<<"$out")
    [[ -n $requests && $requests -gt 0 ]] || die "wrk completed no requests through $proxy: $out"
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN {printf "%.2f", t / hz * 1000000 / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$proxy" "$conns" "$round" "$rps" "$p50" "$p99" "$cpu_us" "$errors" >>"$RAW"
    log "round $round  $proxy  c=$conns  ${rps} req/s  p50 ${p50}us  p99 ${p99}us  ${cpu_us} CPU us/req  errors $errors"
}


# column_median PROXY CONNS FIELD (4 rps, 5 p50, 6 p99, 7 cpu, 8 errors summed instead)
column_median() {
    awk -F'\t' -v p="$1" -v c="$2" -v f="$3" '$1 == p && $2 == c {print $f}' "$RAW" | median
}

us_to_ms() { awk -v v="$1" 'BEGIN {if (v == "-") print "-"; else printf "%.2f", v / 1000}'; }

# Prints the summary as a markdown table (also readable as plain text).
report_table() {
    local conns proxy rps p50 p99 cpu errors nginx_rps nginx_cpu
    echo "| proxy | conns | req/s | req/s vs nginx | p50 ms | p99 ms | CPU µs/req | CPU vs nginx | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for conns in $CONNECTIONS; do
        nginx_rps=$(column_median nginx "$conns" 4)
        nginx_cpu=$(column_median nginx "$conns" 7)
        for proxy in ${ONLY//,/ }; do
            rps=$(column_median "$proxy" "$conns" 4)
            p50=$(us_to_ms "$(column_median "$proxy" "$conns" 5)")
            p99=$(us_to_ms "$(column_median "$proxy" "$conns" 6)")
            cpu=$(column_median "$proxy" "$conns" 7)
            errors=$(awk -F'\t' -v p="$proxy" -v c="$conns" '$1 == p && $2 == c {e += $8} END {print e + 0}' "$RAW")
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$proxy" "$conns" "$rps" \
                "$(ratio "$rps" "$nginx_rps")" "$p50" "$p99" "$cpu" "$(ratio "$cpu" "$nginx_cpu")" "$errors"
        done
    done
}

environment_notes() {
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); scalegate commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(getconf _NPROCESSORS_ONLN) cores; kernel $(uname -r)"
    echo "- $(nginx -v 2>&1); $(haproxy -v | head -n 1 | cut -d' ' -f1-3); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo "- load average before the run: $LOAD_BEFORE"
    echo "- command: \`bench/proxy.sh --duration $DURATION --warmup $WARMUP --rounds $ROUNDS --connections \"$CONNECTIONS\" --only $ONLY\`"
    echo "- medians of $ROUNDS interleaved rounds; wrk -t1 -cN -d$DURATION --latency on core $LOAD_CORE with both nginx backends; each proxy alone on core $PROXY_CORE, one worker"
}

main() {
    parse_args "$@"
    check_tools
    cd "$REPO_ROOT"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    CLK_TCK=$(getconf CLK_TCK)
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN {exit !(l > 1.0)}'; then
        log "warning: load average is $LOAD_BEFORE; other work on these cores skews every figure"
    fi

    if { selected scalegate || selected scalegate-mt; } && [[ $SKIP_BUILD == 0 ]]; then
        log "cargo build --release"
        cargo build --release --quiet
    fi
    if selected scalegate || selected scalegate-mt; then
        [[ -x target/release/scalegate ]] || die "target/release/scalegate is missing (drop --skip-build)"
    fi

    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/scalegate-bench.XXXXXX")
    RAW="$WORK_DIR/raw.tsv"
    start_backends
    start_proxies

    local round conns proxy
    for ((round = 1; round <= ROUNDS; round++)); do
        for conns in $CONNECTIONS; do
            for proxy in ${ONLY//,/ }; do
                run_one "$proxy" "$conns" "$round"
            done
        done
    done

    local table notes
    table=$(report_table)
    notes=$(environment_notes)
    mkdir -p "$REPO_ROOT/bench/results"
    {
        echo "# Proxy benchmark: latest run"
        echo
        echo "$notes"
        echo
        echo "$table"
        echo
        echo "Raw rows (proxy, conns, round, req/s, p50 µs, p99 µs, CPU µs/req, errors):"
        echo
        echo '```'
        cat "$RAW"
        echo '```'
    } >"$REPO_ROOT/bench/results/latest.md"
    echo
    echo "$notes"
    echo
    column -t -s'|' <<<"$(grep -v '^|---' <<<"$table")" 2>/dev/null || echo "$table"
    echo
    echo "bench/proxy.sh: done; markdown in bench/results/latest.md"
}

main "$@"
