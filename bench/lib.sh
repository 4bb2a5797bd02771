# Helpers shared by the bench scripts (sourced, not run). Each script sets WORK_DIR, STARTED_PIDS (an
# array), STOP_TIMEOUT_SECONDS and ONLY (a comma list) before using them.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*" >&2; }

die() {
    printf '%s: %s\n' "${0#"${REPO_ROOT:-}/"}" "$*" >&2
    exit 1
}

# selected NAME: whether NAME is in the comma list $ONLY.
selected() { [[ ,$ONLY, == *,"$1",* ]]; }

# start CORE LOGFILE COMMAND... : runs COMMAND pinned to CORE in the background; sets LAST_PID.
start() {
    local core=$1 logfile=$2
    shift 2
    taskset -c "$core" "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
}

# Stops every started process: SIGTERM, up to STOP_TIMEOUT_SECONDS, then SIGKILL.
stop_started() {
    local pid deadline
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
    for pid in "${STARTED_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [[ $SECONDS -lt $deadline ]]; do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}

# tree_ticks PID: utime+stime of PID and its descendants, in clock ticks.
tree_ticks() {
    local pid=$1 stat child total
    local -a fields
    stat=$(<"/proc/$pid/stat") || return 1
    stat=${stat##*) }
    read -r -a fields <<<"$stat"
    total=$((fields[11] + fields[12]))
    for child in $(pgrep -P "$pid" || true); do
        total=$((total + $(tree_ticks "$child")))
    done
    echo "$total"
}

# The median of the numbers on stdin, "-" for none.
median() {
    sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# Prints the calling script's header comment (from line 2 to `set -euo`) as its help.
usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# ratio A B : A / B to two decimals, "-" when either is missing or B is zero.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {if (b == "-" || b == "" || b + 0 == 0 || a == "-") print "-"; else printf "%.2f", a / b}'
}

# Stops what the script started and removes its WORK_DIR (the scripts' EXIT trap).
cleanup() {
    stop_started
    if [[ -n $WORK_DIR ]]; then
        rm -rf "$WORK_DIR"
    fi
}

# nginx_conf NAME HTTP_BLOCK : a one-worker nginx config whose files all live in WORK_DIR.
nginx_conf() {
    local name=$1 http_block=$2 dir="$WORK_DIR/$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
$http_block
}
EOF
    echo "$dir/nginx.conf"
}

start_nginx() {
    local name=$1 core=$2 conf=$3
    start "$core" "$WORK_DIR/$name.log" nginx -e "$WORK_DIR/$name/error.log" -c "$conf" \
        -g 'daemon off;'
}
