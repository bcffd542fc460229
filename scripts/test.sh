#!/usr/bin/env bash
# Runs every test: the unit tests, then the integration tests against a real local Patroni cluster
# (scripts/patroni-cluster.sh installs and starts it when needed). Ends with a line "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log_dir=$(mktemp -d /tmp/patroniyarp-test.XXXXXX)

# A cluster that was already running (a demo, say) is left running; one started here is stopped at the end.
started_cluster=0
if ! bash scripts/patroni-cluster.sh status >/dev/null 2>&1; then
  started_cluster=1
fi
cleanup() {
  if [ "$started_cluster" = 1 ]; then
    bash scripts/patroni-cluster.sh down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

passed=0
failed=0
# Adds the counts of one `dotnet test` run. A run that printed no summary (build error), or whose test host crashed
# (it prints "Test Run Aborted." after a summary of the tests that ran before the crash, and exits non-zero with no
# test counted as failed), counts as one more failure.
count() {
  local log=$1 status=$2 summary run_failed
  summary=$(grep -E '^(Passed|Failed)!' "$log" || true)
  if [ -z "$summary" ]; then
    failed=$((failed + 1))
    return
  fi
  run_failed=$(awk -F'Failed: *' '{ split($2, a, ","); n += a[1] } END { print n + 0 }' <<<"$summary")
  passed=$((passed + $(awk -F'Passed: *' '{ split($2, a, ","); n += a[1] } END { print n + 0 }' <<<"$summary")))
  failed=$((failed + run_failed))
  if grep -q 'Test Run Aborted' "$log" || { [ "$status" -ne 0 ] && [ "$run_failed" -eq 0 ]; }; then
    echo "the test run was aborted (exit status $status): counted as a failure"
    failed=$((failed + 1))
  fi
}

run_tests() {
  local project=$1 log="$log_dir/$(basename "$1").log"
  echo "== dotnet test $project"
  # A test that hangs is ended after 10 minutes (the longest takes about one) and its run counts as aborted, naming
  # the test, instead of holding the run until CI's own limit.
  dotnet test "$project" --no-build --blame-hang-timeout 10min --blame-hang-dump-type none 2>&1 | tee "$log"
  count "$log" "${PIPESTATUS[0]}"
}

# Real clients the integration tests drive, beside what the cluster script installs (Patroni, etcd, PostgreSQL).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
ensure_packages haproxy openssl postgresql-client

dotnet build PatroniYarp.sln -nologo -v q || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

run_tests tests/PatroniYarp.Tests

if bash scripts/patroni-cluster.sh up; then
  run_tests tests/PatroniYarp.IntegrationTests
else
  echo "the real Patroni cluster did not come up: integration tests not run"
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
