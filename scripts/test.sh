#!/usr/bin/env bash
# scalegate's test command: the one the README names and CI runs (through .ci/run).
#
#   1. installs the Debian packages the tests drive (curl, wrk, h2load, promtool, nginx,
#      haproxy, dig, ps, chromium) when they are missing, without leaving their services
#      running, and the PyPI packages (jsonschema) python3 lacks;
#   2. cargo fmt --check, cargo clippy -D warnings, then the workspace tests
#      (cargo-nextest when installed, else cargo test).
#
# Every check runs even when an earlier one fails, so one run shows every problem; the last
# line is a one-line summary and the exit status is non-zero if anything failed.
#
# Environment: SCALEGATE_SKIP_PACKAGES=1 skips step 1 (for machines without apt).
# shellcheck disable=SC2317 # shellcheck 0.9 marks every function after `trap` unreachable.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# "command the tests run:Debian package that provides it"
readonly REQUIRED_TOOLS=(
    "curl:curl"
    "wrk:wrk"
    "h2load:nghttp2-client"
    "promtool:prometheus"
    "nginx:nginx-light"
    "haproxy:haproxy"
    "dig:dnsutils"
    "pgrep:procps"
    "chromium:chromium"
)
# "python module the tests import:PyPI package that provides it"
readonly REQUIRED_PYTHON_MODULES=(
    "jsonschema:jsonschema"
)
# Services those packages would start; none may be left holding ports (80, 9090, ...).
readonly PACKAGE_SERVICES=(nginx haproxy prometheus prometheus-node-exporter)
readonly APT_OPTS=(-qq -y -o DPkg::Lock::Timeout=600 --no-install-recommends)

declare -a RESULTS=()
FAILED=0
START_TIME=$SECONDS
POLICY_RC_CREATED=""

log() { printf '==> %s\n' "$*" >&2; }

cleanup() {
    if [[ -n $POLICY_RC_CREATED ]]; then
        as_root rm -f "$POLICY_RC_CREATED"
    fi
}
trap cleanup EXIT

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root (or passwordless sudo) to run: $*"
        return 1
    fi
}

# Echoes the packages whose command is not on PATH (sbin included: nginx lives there).
missing_packages() {
    local entry tool package
    for entry in "${REQUIRED_TOOLS[@]}"; do
        tool=${entry%%:*}
        package=${entry#*:}
        if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1; then
            echo "$package"
        fi
    done
}

# Blocks service starts during the install when no policy-rc.d exists yet (Docker images
# ship one; plain Debian does not).
block_service_starts() {
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        POLICY_RC_CREATED=$policy
    fi
}

# Belt and braces after an install: stop and disable anything that started anyway.
stop_package_services() {
    local service
    for service in "${PACKAGE_SERVICES[@]}"; do
        if [[ -x /etc/init.d/$service ]] || [[ -d /run/systemd/system ]]; then
            as_root service "$service" stop >/dev/null 2>&1 || true
            if [[ -d /run/systemd/system ]]; then
                as_root systemctl disable --quiet "$service" >/dev/null 2>&1 || true
            else
                as_root update-rc.d "$service" disable >/dev/null 2>&1 || true
            fi
        fi
    done
}

install_packages() {
    local -a missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing tools and no apt-get; install these packages (or equivalents): ${missing[*]}"
        return 1
    fi
    log "installing missing packages: ${missing[*]}"
    local apt_log
    apt_log=$(mktemp)
    block_service_starts
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update \
        >"$apt_log" 2>&1 \
        || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install \
            "${missing[@]}" >>"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        rm -f "$apt_log"
        return 1
    fi
    rm -f "$apt_log"
    stop_package_services
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -ne 0 ]]; then
        log "still missing after apt-get install: ${missing[*]}"
        return 1
    fi
}

# Installs the PyPI packages whose module python3 cannot import.
install_python_modules() {
    local entry module package
    local -a missing=()
    for entry in "${REQUIRED_PYTHON_MODULES[@]}"; do
        module=${entry%%:*}
        package=${entry#*:}
        if ! python3 -c "import $module" >/dev/null 2>&1; then
            missing+=("$package")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    log "installing missing Python packages: ${missing[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
}

# run_step NAME COMMAND... : runs the step, records "NAME ok|FAILED (Ns)".
run_step() {
    local name=$1
    shift
    local started=$SECONDS
    log "$name: $*"
    if "$@"; then
        RESULTS+=("$name ok ($((SECONDS - started))s)")
    else
        RESULTS+=("$name FAILED ($((SECONDS - started))s)")
        FAILED=1
    fi
}

# Runs inside run_step's `if`, where set -e is off: statuses are combined by hand. The
# runner's output is kept so the closing line can count the tests that ran.
TEST_OUTPUT=$(mktemp)
run_tests() {
    local status=0
    if cargo nextest --version >/dev/null 2>&1; then
        # nextest does not run doctests; they run first so nextest's summary closes the log.
        cargo test --workspace --doc || status=1
        cargo nextest run --workspace --no-fail-fast --no-tests=warn 2>&1 | tee "$TEST_OUTPUT" || status=1
        return "$status"
    fi
    cargo test --workspace --no-fail-fast 2>&1 | tee "$TEST_OUTPUT" || status=1
    return "$status"
}

# Sums the numbers before WORD (`passed`, `failed`) on the runners' summary lines.
count_word() {
    awk -v word="$1" '/tests run: |^test result: / {
        for (i = 1; i < NF; i++) if ($(i + 1) ~ "^" word) total += $i
    } END { print total + 0 }' "$TEST_OUTPUT"
}

# Prints `tests: N passed, N failed` from the runner's own counts (nextest's summary, or the
# sum of cargo test's result lines).
test_counts() {
    local passed failed
    passed=$(count_word passed)
    failed=$(count_word failed)
    printf 'tests: %s passed, %s failed\n' "$passed" "$failed"
}

summary() {
    local verdict=PASS
    if [[ $FAILED -ne 0 ]]; then
        verdict=FAIL
    fi
    local IFS=,
    printf 'scripts/test.sh: %s in %ss [%s]\n' "$verdict" "$((SECONDS - START_TIME))" \
        "${RESULTS[*]}"
    if [[ -s $TEST_OUTPUT ]]; then
        test_counts
    fi
    rm -f "$TEST_OUTPUT"
}

main() {
    if [[ ${SCALEGATE_SKIP_PACKAGES:-0} == 1 ]]; then
        RESULTS+=("packages skipped")
    else
        run_step packages install_packages
        run_step python-packages install_python_modules
        if [[ $FAILED -ne 0 ]]; then
            summary
            exit 1
        fi
    fi
    run_step fmt cargo fmt --all -- --check
    run_step clippy cargo clippy --workspace --all-targets -- -D warnings
    run_step tests run_tests
    summary
    exit "$FAILED"
}

main "$@"
