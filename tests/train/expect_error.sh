#!/usr/bin/env bash
# expect_error.sh RC PATTERN -- COMMAND...: passes when COMMAND exits with RC and writes exactly
# one line to stderr, which contains PATTERN (grep -E). The bad-input contract of the CLI.
set -u
want_rc=$1 pattern=$2
shift 3
err=$("$@" 2>&1 >/dev/null)
rc=$?
lines=$(printf '%s' "$err" | grep -c '')
if [ "$rc" -ne "$want_rc" ]; then echo "exit code $rc, expected $want_rc; stderr: $err"; exit 1; fi
if [ "$lines" -ne 1 ]; then echo "expected one line on stderr, got $lines: $err"; exit 1; fi
if ! printf '%s' "$err" | grep -qE -- "$pattern"; then echo "stderr '$err' does not match '$pattern'"; exit 1; fi
echo "ok: $err"
