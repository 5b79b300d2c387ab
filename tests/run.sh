#!/bin/sh
# Run every test suite: the unit test binaries, then the integration suite
# against build/ and again against build/asan/ with the sanitizers logging to
# files (any such file is a failure).  Last line: "N passed, M failed".
# Usage: sh tests/run.sh [integration-test-filter ...]
cd "$(dirname "$0")/.." || exit 1

out=$(mktemp -d "${TMPDIR:-/tmp}/sluice-tests.XXXXXX")
# Debian's interpreter, which sees the Debian packages the tests use
# (python3-selenium); another python3 first on PATH (pyenv) would not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
total_pass=0
total_fail=0
total_skip=0
summary=""

add_summary() { # suite passed failed [note]
    summary="$summary$(printf '%-28s %4d passed, %d failed%s' "$1" "$2" "$3" "$4")
"
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
}

# Counts "ok"/"not ok" lines of a TAP-ish log into $p and $f.
count_log() {
    p=$(grep -c '^ok' "$1")
    f=$(grep -c '^not ok' "$1")
}

# --- unit tests --------------------------------------------------------------
# Plain, then built with ASan+UBSan (make asan): a sanitizer report aborts
# the binary (leaks at exit too), and a non-zero exit is a failure.
run_unit() { # label dir
    up=0; uf=0
    found_unit=0
    for t in "$2"/*_test; do
        [ -x "$t" ] || continue
        found_unit=1
        name=$(basename "$t")
        log="$out/$1-$name.log"
        echo "# $1: $name"
        timeout 300 "$t" >"$log" 2>&1
        rc=$?
        cat "$log"
        count_log "$log"
        # a crash or non-zero exit with no failing line still counts as a failure
        if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
            echo "not ok - $name exited with status $rc"
            f=1
        fi
        if [ "$p" = 0 ] && [ "$f" = 0 ]; then
            echo "not ok - $name ran no test"
            f=1
        fi
        up=$((up + p)); uf=$((uf + f))
    done
    if [ "$found_unit" = 0 ]; then
        echo "not ok - no unit test binaries in $2"
        uf=$((uf + 1))
    fi
    add_summary "$1" "$up" "$uf"
}
run_unit unit build/tests
run_unit "unit (asan+ubsan)" build/asan/tests

# --- layers --------------------------------------------------------------------
# Includes point one way between modules, and no two product files call
# each other in a circle (nm over build/obj): tests/layers.py.
log="$out/layers.log"
echo "# layers"
"$PY" tests/layers.py build >"$log" 2>&1
rc=$?
cat "$log"
count_log "$log"
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    echo "not ok - tests/layers.py exited with status $rc"
    f=1
fi
add_summary layers "$p" "$f"

# --- integration -------------------------------------------------------------
# The plain and the ASan+UBSan suites run at the same time (most of their
# time is spent waiting on timers and sockets, not on the CPU); SERIAL=1 runs
# one after the other.  Each suite's output is shown when it has ended.
start_integration() { # label build-dir [sanitizer log dir]
    label=$1; dir=$2; sanlog=$3
    log="$out/integration-$label.log"
    if [ -n "$sanlog" ]; then
        mkdir -p "$sanlog"
        ( SLUICE_BUILD=$dir SLUICE_PORT_BASE=21000 SLUICE_PORT_SPAN=11000 \
          ASAN_OPTIONS="detect_leaks=1:log_path=$sanlog/asan" \
          UBSAN_OPTIONS="print_stacktrace=1:log_path=$sanlog/ubsan" \
              timeout 900 "$PY" tests/integration/run.py $FILTERS >"$log" 2>&1
          echo $? >"$log.rc" ) &
    else
        ( SLUICE_BUILD=$dir SLUICE_PORT_BASE=10000 SLUICE_PORT_SPAN=11000 \
              timeout 900 "$PY" tests/integration/run.py $FILTERS >"$log" 2>&1
          echo $? >"$log.rc" ) &
    fi
    [ "${SERIAL:-0}" = 1 ] && wait
}

collect_integration() { # label build-dir [sanitizer log dir]
    label=$1; dir=$2; sanlog=$3
    log="$out/integration-$label.log"
    echo "# integration ($label): SLUICE_BUILD=$dir"
    rc=$(cat "$log.rc" 2>/dev/null || echo 1)
    grep -v '^[0-9]* passed, [0-9]* failed' "$log"
    count_log "$log"
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "not ok - integration ($label) exited with status $rc"
        f=1
    fi
    note=""
    if [ -n "$sanlog" ]; then
        for s in "$sanlog"/*; do
            [ -f "$s" ] || continue
            echo "not ok - sanitizer report $(basename "$s"):"
            sed 's/^/#   /' "$s" | head -60
            f=$((f + 1))
            note=" (sanitizer reports)"
        done
    fi
    add_summary "integration ($label)" "$p" "$f" "$note"
}

FILTERS="$*"
have_asan=0
if [ -x build/asan/sluice ] && [ -x build/asan/sluice-echo ] && [ -x build/asan/sluice-k8s ]; then
    have_asan=1
fi
start_integration plain build
[ "$have_asan" = 1 ] && start_integration asan build/asan "$out/sanitizers"
wait
collect_integration plain build
if [ "$have_asan" = 1 ]; then
    collect_integration asan build/asan "$out/sanitizers"
else
    echo "not ok - build/asan/sluice, sluice-echo or sluice-k8s missing"
    add_summary "integration (asan)" 0 1
fi

echo "#"
echo "# summary"
printf '%s' "$summary" | sed 's/^/# /'
echo "# logs in $out"
if [ "$total_skip" -gt 0 ]; then
    echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
    echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" = 0 ]
