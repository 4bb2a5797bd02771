#!/usr/bin/env bash
# Is scalegate's load generator ever the bottleneck? Compares `scalegate loadtest` with wrk,
# both on one core against the same trivial server, in one run.
#
# Layout (2+ cores): the generator under test runs alone on core 0 with one thread; the server,
# nginx with one worker answering every request with the same 100-byte body, runs on core 1.
# Each round, interleaved so drift on the machine hits every tool alike:
#   1. wrk -t1 -cN -d$DURATION                        (closed loop: wrk's maximum rate)
#   2. scalegate loadtest -t1 -cN -z$DURATION          (closed model: scalegate's maximum rate)
#   3. scalegate loadtest -t1 -cN -r <wrk's rate of 1.> (open model at wrk's rate over the same
#                                                        N connections: does it keep the
#                                                        schedule, within 1 %, and how many
#                                                        requests left late?)
# For each: requests/s, p50/p99, and the generator's own CPU time per request (utime+stime of
# the tool, from its parent's children counters). The table shows medians over rounds and the
# ratios to wrk; bench/results/loadtest-latest.md gets the same as markdown.
#
# Usage: bench/loadtest.sh [--duration 10s] [--rounds 3] [--connections 64] [--skip-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly GENERATOR_CORE=0
readonly SERVER_CORE=1
readonly BODY_BYTES=100
readonly READY_TIMEOUT_SECONDS=30
readonly STOP_TIMEOUT_SECONDS=10
export PATH="$PATH:/usr/sbin:/sbin"

DURATION=10s
ROUNDS=3
CONNECTIONS=64
SKIP_BUILD=0
ONLY=""
WORK_DIR=""
declare -a STARTED_PIDS=()

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
            --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
            --connections) CONNECTIONS=${2:?--connections needs a value}; shift 2 ;;
            --skip-build) SKIP_BUILD=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
    done
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
    [[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections must be a positive integer"
    [[ $DURATION =~ ^[1-9][0-9]*s$ ]] || die "--duration takes whole seconds, e.g. 10s"
}

check_tools() {
    local -a missing=()
    local tool
    for tool in taskset wrk nginx curl getconf python3; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ $SKIP_BUILD == 1 ]] || command -v cargo >/dev/null 2>&1 || missing+=(cargo)
    if [[ ${#missing[@]} -gt 0 ]]; then
        die "missing tools: ${missing[*]} (apt-get install wrk nginx-light curl util-linux)"
    fi
    local cores
    cores=$(getconf _NPROCESSORS_ONLN)
    [[ $cores -ge 2 ]] || die "needs at least 2 cores (generator on core $GENERATOR_CORE, server on core $SERVER_CORE); this machine has $cores"
}

start_server() {
    local body conf deadline
    body=$(printf 'x%.0s' $(seq "$BODY_BYTES"))
    # Port 0 is not an nginx option: take a free one from the kernel.
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    conf=$(nginx_conf server "
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        default_type text/plain;
        location / { return 200 '$body'; }
    }")
    start_nginx server "$SERVER_CORE" "$conf"
    URL="http://127.0.0.1:$PORT/"
    deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    until [[ $(curl -fsS --max-time 1 "$URL" 2>/dev/null) == "$body" ]]; do
        [[ $SECONDS -lt $deadline ]] || die "nginx did not answer at $URL (see $WORK_DIR/server/error.log)"
        sleep 0.1
    done
    log "server: nginx on $URL (core $SERVER_CORE)"
}

# measure OUT_FILE COMMAND... : runs COMMAND on the generator core; echoes its CPU ticks
# (user+system of the command and its children, read from a wrapper shell's cutime/cstime).
measure() {
    local out=$1
    shift
    # shellcheck disable=SC2016 # $$ and the field numbers are for the inner shell
    bash -c '"$@" >"$0"; read -r -a f < /proc/$$/stat; echo $((f[15] + f[16]))' \
        "$out" taskset -c "$GENERATOR_CORE" "$@"
}

json_field() {
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
v = r
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$1" "$2"
}

# wrk latency ("812.00us", "1.23ms", "2.01s") to milliseconds.
wrk_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else if (v ~ /s$/) f = 1000; else f = 1
        printf "%.3f", n * f
    }'
}

cpu_us_per_request() {
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {if (n > 0) printf "%.2f", t / hz * 1000000 / n; else print "-"}'
}

run_round() {
    local round=$1 out ticks requests rps p50 p99 errors seconds=${DURATION%s}
    local sg="$SCALEGATE_BIN"

    out="$WORK_DIR/wrk.txt"
    ticks=$(measure "$out" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$URL")
    requests=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    p50=$(wrk_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(wrk_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Socket errors:/ {gsub(",", ""); e += $4 + $6 + $8 + $10}
                  /Non-2xx/ {e += $NF} END {print e + 0}' "$out")
    [[ -n $requests && $requests -gt 0 ]] || die "wrk completed no requests: $(cat "$out")"
    WRK_RPS=$rps
    row "wrk (closed)" "$round" "$rps" "-" "$p50" "$p99" "$(cpu_us_per_request "$ticks" "$requests")" "$errors" "-"

    out="$WORK_DIR/closed.json"
    ticks=$(measure "$out" "$sg" loadtest "$URL" -t1 -c"$CONNECTIONS" -z"$DURATION" --json --no-progress)
    sg_row "scalegate (closed)" "$round" "$out" "$ticks"

    out="$WORK_DIR/open.json"
    ticks=$(measure "$out" "$sg" loadtest "$URL" -t1 -c"$CONNECTIONS" -r "$WRK_RPS" -z"$DURATION" --json --no-progress)
    sg_row "scalegate (open, wrk's rate)" "$round" "$out" "$ticks"
    log "round $round: wrk $WRK_RPS req/s; open model at that rate for ${seconds}s done"
}

sg_row() {
    local tool=$1 round=$2 out=$3 ticks=$4 completed rps sent intended accuracy p50 p99 failed late
    completed=$(json_field "$out" completed_requests)
    rps=$(json_field "$out" achieved_rate_per_second)
    sent=$(json_field "$out" sent_requests)
    intended=$(json_field "$out" intended_requests)
    failed=$(json_field "$out" failed_requests)
    p50=$(json_field "$out" latency.p50_ms)
    p99=$(json_field "$out" latency.p99_ms)
    if [[ $tool == *open* ]]; then
        # Requests completed within the schedule's length plus the wait for the last answers
        # vs the schedule; and the share sent more than 10 ms after their intended time.
        accuracy=$(awk -v s="$sent" -v i="$intended" 'BEGIN {printf "%.2f", (s - i) / i * 100}')
        late=$(json_field "$out" late_requests)
        late=$(awk -v l="$late" -v s="$sent" 'BEGIN {printf "%.2f", l / s * 100}')
        rps=$(awk -v n="$completed" -v d="$(json_field "$out" duration_seconds)" 'BEGIN {printf "%.0f", n / d}')
    else
        accuracy="-"
        late="-"
    fi
    row "$tool" "$round" "$(printf '%.0f' "$rps")" "$accuracy" "$p50" "$p99" \
        "$(cpu_us_per_request "$ticks" "$completed")" "$failed" "$late"
}

row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"
    log "round $2  $1  $3 req/s  sent vs schedule ${4}%  late ${9}%  p50 ${5}ms  p99 ${6}ms  ${7} CPU us/req  errors $8"
}

column_median() {
    awk -F'\t' -v t="$1" -v f="$2" '$1 == t && $f != "-" {print $f}' "$RAW" | median
}

report_table() {
    local tool rps wrk_rps wrk_cpu cpu errors
    wrk_rps=$(column_median "wrk (closed)" 3)
    wrk_cpu=$(column_median "wrk (closed)" 7)
    echo "| generator (1 thread, core $GENERATOR_CORE) | req/s | req/s vs wrk | sent vs schedule | late | p50 ms | p99 ms | CPU µs/req | CPU vs wrk | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for tool in "wrk (closed)" "scalegate (closed)" "scalegate (open, wrk's rate)"; do
        rps=$(column_median "$tool" 3)
        cpu=$(column_median "$tool" 7)
        errors=$(awk -F'\t' -v t="$tool" '$1 == t {e += $8} END {print e + 0}' "$RAW")
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$tool" "$rps" \
            "$(ratio "$rps" "$wrk_rps")" "$(column_median "$tool" 4 | sed 's/^\([^-].*\)$/\1 %/')" \
            "$(column_median "$tool" 9 | sed 's/^\([^-].*\)$/\1 %/')" \
            "$(column_median "$tool" 5)" "$(column_median "$tool" 6)" "$cpu" \
            "$(ratio "$cpu" "$wrk_cpu")" "$errors"
    done
}

environment_notes() {
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); scalegate commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(getconf _NPROCESSORS_ONLN) cores; kernel $(uname -r)"
    echo "- $(nginx -v 2>&1); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo "- load average before the run: $LOAD_BEFORE"
    echo "- command: \`bench/loadtest.sh --duration $DURATION --rounds $ROUNDS --connections $CONNECTIONS\`"
    echo "- medians of $ROUNDS interleaved rounds; each generator alone on core $GENERATOR_CORE with one thread and $CONNECTIONS connections, nginx (one worker, 100-byte body) on core $SERVER_CORE"
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
    if [[ $SKIP_BUILD == 0 ]]; then
        log "cargo build --release"
        cargo build --release --quiet
    fi
    SCALEGATE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/scalegate"
    [[ -x $SCALEGATE_BIN ]] || die "$SCALEGATE_BIN is missing (drop --skip-build)"

    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/scalegate-bench-loadtest.XXXXXX")
    RAW="$WORK_DIR/raw.tsv"
    start_server
    taskset -c "$GENERATOR_CORE" wrk -t1 -c"$CONNECTIONS" -d2s "$URL" >/dev/null # warm-up

    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        run_round "$round"
    done

    local table notes
    table=$(report_table)
    notes=$(environment_notes)
    mkdir -p "$REPO_ROOT/bench/results"
    {
        echo "# Load generator benchmark: latest run"
        echo
        echo "$notes"
        echo
        echo "$table"
        echo
        echo "Raw rows (tool, round, req/s, sent vs schedule %, p50 ms, p99 ms, CPU µs/req, errors, late %):"
        echo
        echo '```'
        cat "$RAW"
        echo '```'
    } >"$REPO_ROOT/bench/results/loadtest-latest.md"
    echo
    echo "$notes"
    echo
    column -t -s'|' <<<"$(grep -v '^|---' <<<"$table")" 2>/dev/null || echo "$table"
    echo
    echo "bench/loadtest.sh: done; markdown in bench/results/loadtest-latest.md"
}

main "$@"
