#!/usr/bin/env bash
# Measures the embedded registry's DNS server with dnsperf: queries per second on one core,
# latency and lost queries, next to NSD (an authoritative server from Debian) serving the same
# answers.
#
# Layout (2+ cores): the server under test runs alone on core 0 (scalegate with
# `runtime.workers: 1`; its registry answers on the control runtime, also on that core; NSD with
# `server-count: 1`); dnsperf runs on core 1. Both serve `scalegate.local` on 127.0.0.1: a
# service `app` with 4 instances and a service `big` with 20. scalegate answers up to 8 records
# per name (Cloud Map's multivalue); NSD's zone holds 8 of them for `big`, so both answer every
# query with the same status, flags and answer records (checked with dig before measuring; the
# other sections differ slightly, see docs/benchmarks.md).
#
# The query file mixes service A queries (30%), SRV queries with additional A records (20%),
# instance A queries (20%) and names that do not exist (30%, NXDOMAIN with the SOA), with EDNS
# as resolvers send it. Per round and server: a warm-up, a saturating run (dnsperf -c clients,
# -q outstanding queries, -l seconds), then a run at a fixed rate for latency under moderate
# load. Rounds are interleaved and the table shows medians; CPU µs/query is the server's
# utime+stime (all threads and child processes, from /proc) divided by the queries answered,
# and "busy" is each core's non-idle share from /proc/stat, which tells whether the server
# (core 0) or dnsperf (core 1) was the limit.
#
# Installs dnsperf, dig and NSD with apt when missing (as root; NSD's service is kept from
# starting). Writes the table to bench/results/dns-latest.md.
#
# Usage: bench/dns.sh [--duration 15] [--warmup 3] [--rounds 3] [--clients 8]
#                     [--outstanding 200] [--latency-qps 10000] [--only scalegate,nsd]
#                     [--skip-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly ALL_SERVERS="scalegate,nsd"
readonly SERVER_CORE=0
readonly LOAD_CORE=1
readonly NAMESPACE=scalegate.local
readonly SMALL_SERVICE=app
readonly SMALL_INSTANCES=4
readonly BIG_SERVICE=big
readonly BIG_INSTANCES=20
readonly MULTIVALUE_LIMIT=8
readonly RECORD_TTL=5
readonly NEGATIVE_TTL=5
readonly LATENCY_RUN_SECONDS=5
readonly READY_TIMEOUT_SECONDS=60
readonly STOP_TIMEOUT_SECONDS=10
export PATH="$PATH:/usr/sbin:/sbin"

DURATION=15
WARMUP=3
ROUNDS=3
CLIENTS=8
OUTSTANDING=200
LATENCY_QPS=10000
ONLY=$ALL_SERVERS
SKIP_BUILD=0

WORK_DIR=""
POLICY_RC_CREATED=0
declare -a STARTED_PIDS=()
declare -A SERVER_PID=()
declare -A SERVER_PORT=()


positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
            --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
            --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
            --clients) CLIENTS=${2:?--clients needs a value}; shift 2 ;;
            --outstanding) OUTSTANDING=${2:?--outstanding needs a value}; shift 2 ;;
            --latency-qps) LATENCY_QPS=${2:?--latency-qps needs a value}; shift 2 ;;
            --only) ONLY=${2:?--only needs a value}; shift 2 ;;
            --skip-build) SKIP_BUILD=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
    done
    positive --duration "$DURATION"
    positive --warmup "$WARMUP"
    positive --rounds "$ROUNDS"
    positive --clients "$CLIENTS"
    positive --outstanding "$OUTSTANDING"
    positive --latency-qps "$LATENCY_QPS"
    local server
    for server in ${ONLY//,/ }; do
        [[ ,$ALL_SERVERS, == *,"$server",* ]] || die "unknown server '$server' (one of $ALL_SERVERS)"
    done
}


# --- tools -----------------------------------------------------------------------------------

# Removes the policy-rc.d this script created to keep NSD's service from starting.
remove_policy_rc() {
    if [[ $POLICY_RC_CREATED == 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
}

# apt_install PACKAGE... : non-interactive install, refreshing the package lists once if the
# first attempt fails (a fresh container has none). Services the packages bring are not
# started (Debian's policy-rc.d convention), so NSD does not take port 53.
apt_install() {
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "missing $*: run as root on Debian to have them installed, or: apt-get install $*"
        return 1
    fi
    log "apt-get install $*"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q
        -o Dpkg::Use-Pty=0 install --no-install-recommends "$@")
    if ! "${apt[@]}" >"${TMPDIR:-/tmp}/scalegate-dns-apt.log" 2>&1; then
        apt-get -q update >/dev/null 2>&1 || true
        "${apt[@]}" >"${TMPDIR:-/tmp}/scalegate-dns-apt.log" 2>&1 ||
            { remove_policy_rc; return 1; }
    fi
    remove_policy_rc
}

check_tools() {
    local -a missing=() packages=()
    local tool
    for tool in taskset ss getconf awk; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ ${#missing[@]} -eq 0 ]] || die "missing tools: ${missing[*]} (apt-get install util-linux iproute2 gawk)"
    if selected scalegate && [[ $SKIP_BUILD == 0 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is missing (or pass --skip-build)"
    fi
    command -v dnsperf >/dev/null 2>&1 || packages+=(dnsperf)
    command -v dig >/dev/null 2>&1 || packages+=(bind9-dnsutils)
    if [[ ${#packages[@]} -gt 0 ]]; then
        apt_install "${packages[@]}" || die "cannot install ${packages[*]} (apt-get's log, if it ran: ${TMPDIR:-/tmp}/scalegate-dns-apt.log)"
    fi
    if selected nsd && ! command -v nsd >/dev/null 2>&1; then
        if ! apt_install nsd; then
            log "warning: NSD could not be installed; measuring without the reference"
            ONLY=$(sed -e 's/\(^\|,\)nsd\(,\|$\)/\1/' -e 's/,$//' <<<"$ONLY")
            [[ -n $ONLY ]] || die "nothing left to measure"
        fi
    fi
    local cores
    cores=$(getconf _NPROCESSORS_ONLN)
    [[ $cores -ge 2 ]] || die "needs at least 2 cores (server on core $SERVER_CORE, dnsperf on core $LOAD_CORE); this machine has $cores"
}

# --- processes -------------------------------------------------------------------------------

cleanup() {
    remove_policy_rc
    stop_started
    if [[ -n $WORK_DIR ]]; then
        rm -rf "$WORK_DIR"
    fi
}

# Sets PORT to one that no UDP or TCP socket holds, below the ephemeral range.
free_port() {
    local port taken
    taken=$(ss -Htuan | awk '{print $5}' | sed 's/.*://')
    while true; do
        port=$((20000 + RANDOM % 12000))
        if ! grep -qx "$port" <<<"$taken" && [[ " ${SERVER_PORT[*]} " != *" $port "* ]]; then
            PORT=$port
            return
        fi
    done
}


# wait_ready NAME PID PORT LOGFILE : polls with dig until the small service answers all its
# addresses, within a deadline.
wait_ready() {
    local name=$1 pid=$2 port=$3 logfile=$4 answers
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    while [[ $SECONDS -lt $deadline ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "$name exited before it was ready (log above)"
        fi
        answers=$(dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 \
            "$SMALL_SERVICE.$NAMESPACE" A 2>/dev/null | grep -c '^[0-9]' || true)
        if [[ $answers -eq $SMALL_INSTANCES ]]; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "$name did not answer $SMALL_SERVICE.$NAMESPACE on port $port within ${READY_TIMEOUT_SECONDS}s"
}

# --- the zone --------------------------------------------------------------------------------

small_address() { echo "10.1.0.$1"; }
big_address() { echo "10.2.0.$1"; }
instance_port() { echo $((8080 + $1)); }

write_scalegate_config() {
    local port=$1 conf=$2 i
    {
        echo "# Written by bench/dns.sh: the registry alone, on one core."
        echo "load_balancer:"
        echo "  name: dns-bench"
        echo "  runtime: {mode: per_core, workers: 1}"
        echo "admin:"
        echo "  address: 127.0.0.1:0"
        echo "listeners: []"
        echo "registry:"
        echo "  address: 127.0.0.1:$port"
        echo "  namespaces:"
        echo "    - name: $NAMESPACE"
        echo "      ttl_seconds: $RECORD_TTL"
        echo "      negative_ttl_seconds: $NEGATIVE_TTL"
        echo "      services:"
        echo "        - name: $SMALL_SERVICE"
        echo "          instances:"
        for ((i = 1; i <= SMALL_INSTANCES; i++)); do
            echo "            - {id: $SMALL_SERVICE-$i, address: $(small_address "$i"), port: $(instance_port "$i")}"
        done
        echo "        - name: $BIG_SERVICE"
        echo "          instances:"
        for ((i = 1; i <= BIG_INSTANCES; i++)); do
            echo "            - {id: $BIG_SERVICE-$i, address: $(big_address "$i"), port: $(instance_port "$i")}"
        done
    } >"$conf"
}

# The records scalegate serves, as a zone file: for the big service, the first 8 instances in
# the service's A and SRV answers (scalegate rotates its 8 among the 20), all 20 by name.
write_zone_file() {
    local zone=$1 i shown
    {
        echo "\$ORIGIN $NAMESPACE."
        echo "\$TTL $RECORD_TTL"
        echo "@ $NEGATIVE_TTL IN SOA ns.$NAMESPACE. hostmaster.$NAMESPACE. 1 3600 600 86400 $NEGATIVE_TTL"
        echo "@ IN NS ns.$NAMESPACE."
        echo "ns IN A 127.0.0.1"
        for ((i = 1; i <= SMALL_INSTANCES; i++)); do
            echo "$SMALL_SERVICE IN A $(small_address "$i")"
            echo "$SMALL_SERVICE IN SRV 1 1 $(instance_port "$i") $SMALL_SERVICE-$i.$SMALL_SERVICE.$NAMESPACE."
            echo "_$SMALL_SERVICE._tcp.$SMALL_SERVICE IN SRV 1 1 $(instance_port "$i") $SMALL_SERVICE-$i.$SMALL_SERVICE.$NAMESPACE."
            echo "$SMALL_SERVICE-$i.$SMALL_SERVICE IN A $(small_address "$i")"
        done
        shown=$((BIG_INSTANCES < MULTIVALUE_LIMIT ? BIG_INSTANCES : MULTIVALUE_LIMIT))
        for ((i = 1; i <= shown; i++)); do
            echo "$BIG_SERVICE IN A $(big_address "$i")"
            echo "$BIG_SERVICE IN SRV 1 1 $(instance_port "$i") $BIG_SERVICE-$i.$BIG_SERVICE.$NAMESPACE."
            echo "_$BIG_SERVICE._tcp.$BIG_SERVICE IN SRV 1 1 $(instance_port "$i") $BIG_SERVICE-$i.$BIG_SERVICE.$NAMESPACE."
        done
        for ((i = 1; i <= BIG_INSTANCES; i++)); do
            echo "$BIG_SERVICE-$i.$BIG_SERVICE IN A $(big_address "$i")"
        done
    } >"$zone"
}

# One block of the query mix, repeated to fill the file: 3 service A, 2 SRV, 2 instance A,
# 3 NXDOMAIN.
query_block() {
    echo "$SMALL_SERVICE.$NAMESPACE A"
    echo "$BIG_SERVICE.$NAMESPACE A"
    echo "$SMALL_SERVICE.$NAMESPACE A"
    echo "_$SMALL_SERVICE._tcp.$SMALL_SERVICE.$NAMESPACE SRV"
    echo "_$BIG_SERVICE._tcp.$BIG_SERVICE.$NAMESPACE SRV"
    echo "$SMALL_SERVICE-2.$SMALL_SERVICE.$NAMESPACE A"
    echo "$BIG_SERVICE-17.$BIG_SERVICE.$NAMESPACE A"
    echo "nosuch.$NAMESPACE A"
    echo "$SMALL_SERVICE-99.$SMALL_SERVICE.$NAMESPACE A"
    echo "_nosuch._tcp.nosuch.$NAMESPACE SRV"
}

write_query_file() {
    local file=$1 i
    for ((i = 0; i < 100; i++)); do
        query_block
    done >"$file"
}

# --- servers ---------------------------------------------------------------------------------

start_scalegate() {
    local port=$1 conf="$WORK_DIR/scalegate.yaml"
    write_scalegate_config "$port" "$conf"
    "$SCALEGATE_BIN" check -c "$conf" >/dev/null || die "scalegate rejected $conf"
    start "$SERVER_CORE" "$WORK_DIR/scalegate.log" "$SCALEGATE_BIN" run -c "$conf"
}

start_nsd() {
    local port=$1 dir="$WORK_DIR/nsd"
    mkdir -p "$dir"
    write_zone_file "$dir/$NAMESPACE.zone"
    cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    port: $port
    ip4-only: yes
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    verbosity: 0
    hide-version: yes
    # Not minimal: only then does NSD add the SRV targets' addresses (as scalegate does),
    # at the price of an NS record and its address in every positive answer.
    minimal-responses: no
    # Debian's NSD limits responses to 200/s per client /24 by default (dropping or
    # truncating the rest), which would measure the limiter, not the server.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: $NAMESPACE
    zonefile: "$dir/$NAMESPACE.zone"
EOF
    nsd-checkconf "$dir/nsd.conf" || die "NSD rejected $dir/nsd.conf"
    start "$SERVER_CORE" "$WORK_DIR/nsd.log" nsd -d -c "$dir/nsd.conf"
}

start_servers() {
    local server port logfile
    for server in ${ONLY//,/ }; do
        free_port
        port=$PORT
        case $server in
            scalegate) start_scalegate "$port"; logfile="$WORK_DIR/scalegate.log" ;;
            nsd) start_nsd "$port"; logfile="$WORK_DIR/nsd.log" ;;
        esac
        wait_ready "$server" "$LAST_PID" "$port" "$logfile"
        SERVER_PID[$server]=$LAST_PID
        SERVER_PORT[$server]=$port
        log "$server: 127.0.0.1:$port, pid $LAST_PID (core $SERVER_CORE)"
    done
}

# answer_shape PORT NAME TYPE : "STATUS aa ANSWERS authority/additional SIZE" for one query as
# dnsperf sends it (EDNS, no recursion wanted). The additional count includes the OPT record.
answer_shape() {
    dig +norec +time=2 +tries=1 -p "$1" @127.0.0.1 "$2" "$3" | awk '
        /status:/ {sub(",", "", $6); status = $6}
        /^;; flags:/ {aa = ($0 ~ / aa[ ;]/) ? "aa" : "no-aa"
            for (i = 1; i <= NF; i++) {
                if ($i == "ANSWER:") an = $(i + 1); if ($i == "AUTHORITY:") au = $(i + 1)
                if ($i == "ADDITIONAL:") ad = $(i + 1)
            }
            gsub(",", "", an); gsub(",", "", au); gsub(",", "", ad)}
        /MSG SIZE/ {size = $NF}
        END {printf "%s %s %s %s/%s %sB", status, aa, an, au, ad, size}'
}

# Shows what each query of the mix gets from each server and warns when the status, the aa
# flag or the number of answer records differ (the other sections differ by design: see
# docs/benchmarks.md), so the comparison is between equal answers.
compare_answers() {
    local name type server shape first differ=0
    log "answers (status, aa, answer records, authority/additional records, size):"
    while read -r name type; do
        first=""
        for server in ${ONLY//,/ }; do
            shape=$(answer_shape "${SERVER_PORT[$server]}" "$name" "$type")
            log "  $(printf '%-9s %-36s %-4s %s' "$server" "$name" "$type" "$shape")"
            if [[ -z $first ]]; then
                first=$shape
            elif [[ $(cut -d' ' -f1-3 <<<"$shape") != "$(cut -d' ' -f1-3 <<<"$first")" ]]; then
                differ=1
            fi
        done
    done < <(query_block | sort -u)
    if [[ $differ == 1 ]]; then
        log "warning: the servers' answers differ (above); the comparison is not like for like"
    fi
}

# --- measuring -------------------------------------------------------------------------------


# "busy total" jiffies of one core from /proc/stat.
core_jiffies() {
    awk -v cpu="cpu$1" '$1 == cpu {
        total = 0; for (i = 2; i <= NF; i++) total += $i
        print total - $5 - $6, total}' /proc/stat
}

busy_percent() {
    local before=$1 after=$2
    awk -v b="$before" -v a="$after" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        t = y[2] - x[2]; if (t <= 0) print "-"; else printf "%.0f", (y[1] - x[1]) * 100 / t}'
}

# dnsperf_run PORT SECONDS [MAX_QPS] : prints dnsperf's report.
dnsperf_run() {
    local port=$1 seconds=$2 max_qps=${3:-}
    local -a args=(-s 127.0.0.1 -p "$port" -d "$QUERY_FILE" -e -T 1 -c "$CLIENTS"
        -q "$OUTSTANDING" -l "$seconds" -t 2)
    [[ -z $max_qps ]] || args+=(-Q "$max_qps")
    taskset -c "$LOAD_CORE" dnsperf "${args[@]}" 2>&1
}

# field OUTPUT LABEL : the first number after "LABEL:" in dnsperf's report.
field() {
    awk -v label="$2:" 'index($0, label) {
        rest = substr($0, index($0, label) + length(label))
        if (match(rest, /[0-9.]+/)) print substr(rest, RSTART, RLENGTH)
        exit}' <<<"$1"
}

# max_latency OUTPUT : the "max" of dnsperf's "Average Latency (s): a (min b, max c)".
max_latency() {
    awk '/Average Latency/ {gsub(/[()]/, ""); print $NF}' <<<"$1"
}

seconds_to_ms() { awk -v v="$1" 'BEGIN {if (v == "") print "-"; else printf "%.3f", v * 1000}'; }

# run_one SERVER ROUND : warm-up, saturating run, fixed-rate run; appends a row to RAW.
run_one() {
    local server=$1 round=$2
    local port=${SERVER_PORT[$server]} pid=${SERVER_PID[$server]}
    local out lat_out before after core0_before core0_after core1_before core1_after
    local completed qps lost avg max stddev cpu_us lat_avg lat_sd lat_max lat_lost codes
    local server_busy load_busy
    kill -0 "$pid" 2>/dev/null || die "$server (pid $pid) has exited; see its log in $WORK_DIR"
    dnsperf_run "$port" "$WARMUP" >/dev/null
    before=$(tree_ticks "$pid")
    core0_before=$(core_jiffies "$SERVER_CORE")
    core1_before=$(core_jiffies "$LOAD_CORE")
    out=$(dnsperf_run "$port" "$DURATION")
    after=$(tree_ticks "$pid")
    core0_after=$(core_jiffies "$SERVER_CORE")
    core1_after=$(core_jiffies "$LOAD_CORE")
    completed=$(field "$out" "Queries completed")
    qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' <<<"$out")
    lost=$(field "$out" "Queries lost")
    avg=$(seconds_to_ms "$(field "$out" "Average Latency (s)")")
    max=$(seconds_to_ms "$(max_latency "$out")")
    stddev=$(seconds_to_ms "$(field "$out" "Latency StdDev (s)")")
    codes=$(awk -F': *' '/Response codes:/ {gsub(/ \([0-9.%]+\)/, "", $2); print $2}' <<<"$out")
    [[ -n $completed && $completed -gt 0 ]] || die "dnsperf got no answers from $server: $out"
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$completed" \
        'BEGIN {printf "%.2f", t / hz * 1000000 / n}')
    lat_out=$(dnsperf_run "$port" "$LATENCY_RUN_SECONDS" "$LATENCY_QPS")
    lat_avg=$(seconds_to_ms "$(field "$lat_out" "Average Latency (s)")")
    lat_sd=$(seconds_to_ms "$(field "$lat_out" "Latency StdDev (s)")")
    lat_max=$(seconds_to_ms "$(max_latency "$lat_out")")
    lat_lost=$(field "$lat_out" "Queries lost")
    server_busy=$(busy_percent "$core0_before" "$core0_after")
    load_busy=$(busy_percent "$core1_before" "$core1_after")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$server" "$round" "$qps" "$lost" "$avg" "$stddev" "$max" "$cpu_us" "$server_busy" \
        "$load_busy" "$lat_avg" "$lat_sd" "$lat_max" "$lat_lost" "$codes" >>"$RAW"
    log "round $round  $server  ${qps} q/s  lost $lost  avg ${avg} ms  ${cpu_us} CPU us/query  busy: core $SERVER_CORE ${server_busy}%, core $LOAD_CORE ${load_busy}%  at $LATENCY_QPS q/s: avg ${lat_avg} ms, stddev ${lat_sd} ms, lost $lat_lost"
}


# column_median SERVER FIELD
column_median() {
    awk -F'\t' -v s="$1" -v f="$2" '$1 == s {print $f}' "$RAW" | median
}

column_sum() {
    awk -F'\t' -v s="$1" -v f="$2" '$1 == s {n += $f} END {print n + 0}' "$RAW"
}

report_table() {
    local server qps ref_qps ref_cpu cpu reference=""
    selected nsd && reference=nsd
    ref_qps=$(column_median "$reference" 3)
    ref_cpu=$(column_median "$reference" 8)
    echo "| server | queries/s | vs NSD | lost | avg ms | max ms | CPU µs/query | CPU vs NSD | core $SERVER_CORE busy % | core $LOAD_CORE (dnsperf) busy % | at $LATENCY_QPS q/s: avg ms | stddev ms | max ms | lost |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for server in ${ONLY//,/ }; do
        qps=$(column_median "$server" 3)
        cpu=$(column_median "$server" 8)
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$server" "$qps" "$(ratio "$qps" "$ref_qps")" "$(column_sum "$server" 4)" \
            "$(column_median "$server" 5)" "$(column_median "$server" 7)" "$cpu" "$(ratio "$cpu" "$ref_cpu")" \
            "$(column_median "$server" 9)" "$(column_median "$server" 10)" \
            "$(column_median "$server" 11)" "$(column_median "$server" 12)" \
            "$(column_median "$server" 13)" "$(column_sum "$server" 14)"
    done
}

environment_notes() {
    local nsd_version=""
    selected nsd && nsd_version="; $(nsd -v 2>&1 | head -n 1)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); scalegate commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(getconf _NPROCESSORS_ONLN) cores; kernel $(uname -r)"
    echo "- $(dnsperf -h 2>&1 | awk '/^Version/ {print "dnsperf " $2}')$nsd_version"
    echo "- load average before the run: $LOAD_BEFORE"
    echo "- command: \`bench/dns.sh --duration $DURATION --warmup $WARMUP --rounds $ROUNDS --clients $CLIENTS --outstanding $OUTSTANDING --latency-qps $LATENCY_QPS --only $ONLY\`"
    echo "- medians of $ROUNDS interleaved rounds; \`dnsperf -e -T 1 -c $CLIENTS -q $OUTSTANDING -l $DURATION\` on core $LOAD_CORE, then \`-Q $LATENCY_QPS -l $LATENCY_RUN_SECONDS\`; each server alone on core $SERVER_CORE; lost = summed over rounds"
}

main() {
    parse_args "$@"
    cd "$REPO_ROOT"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    check_tools
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    CLK_TCK=$(getconf CLK_TCK)
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN {exit !(l > 1.0)}'; then
        log "warning: load average is $LOAD_BEFORE; other work on these cores skews every figure"
    fi

    local target_dir=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
    SCALEGATE_BIN="$target_dir/release/scalegate"
    if selected scalegate; then
        if [[ $SKIP_BUILD == 0 ]]; then
            log "cargo build --release"
            cargo build --release --quiet --bin scalegate
        fi
        [[ -x $SCALEGATE_BIN ]] || die "$SCALEGATE_BIN is missing (drop --skip-build)"
    fi

    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/scalegate-dns-bench.XXXXXX")
    RAW="$WORK_DIR/raw.tsv"
    QUERY_FILE="$WORK_DIR/queries.txt"
    write_query_file "$QUERY_FILE"
    start_servers
    compare_answers

    local round server
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in ${ONLY//,/ }; do
            run_one "$server" "$round"
        done
    done

    local table notes
    table=$(report_table)
    notes=$(environment_notes)
    mkdir -p "$REPO_ROOT/bench/results"
    {
        echo "# DNS benchmark: latest run"
        echo
        echo "$notes"
        echo
        echo "$table"
        echo
        echo "Raw rows (server, round, queries/s, lost, avg ms, stddev ms, max ms, CPU µs/query,"
        echo "core $SERVER_CORE busy %, core $LOAD_CORE busy %, at $LATENCY_QPS q/s: avg ms, stddev ms, max ms, lost; response codes):"
        echo
        echo '```'
        cat "$RAW"
        echo '```'
    } >"$REPO_ROOT/bench/results/dns-latest.md"
    echo
    echo "$notes"
    echo
    column -t -s'|' <<<"$(grep -v '^|---' <<<"$table")" 2>/dev/null || echo "$table"
    echo
    echo "bench/dns.sh: done; markdown in bench/results/dns-latest.md"
}

# Sourcing the script (for its config and zone writers) runs nothing.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
