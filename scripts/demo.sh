#!/usr/bin/env bash
# Starts the demo: a real local Patroni cluster (etcd + 3 members, PostgreSQL 15) and PatroniYarp on the shipped
# patroni.yaml, in the foreground. Ctrl-C stops PatroniYarp and the cluster this script started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

started_cluster=0
if ! bash scripts/patroni-cluster.sh status >/dev/null 2>&1; then
  bash scripts/patroni-cluster.sh up
  started_cluster=1
fi
cleanup() {
  if [ "$started_cluster" = 1 ]; then
    bash scripts/patroni-cluster.sh down || true
  fi
}
trap cleanup EXIT

dotnet build src/PatroniYarp -c Release -nologo -v q

cat <<'TRY'

PatroniYarp is starting on patroni.yaml. In another terminal, try:
  psql "host=127.0.0.1 port=6432 user=postgres" -c "select inet_server_port(), pg_is_in_recovery()"   # leader
  psql "host=127.0.0.1 port=6433 user=postgres" -c "select inet_server_port(), pg_is_in_recovery()"   # a replica
  curl -s http://127.0.0.1:8009/clusters                 # what PatroniYarp knows
  bash scripts/patroni-cluster.sh switchover             # then ask port 6432 again: the new leader
Ctrl-C here stops PatroniYarp and the demo cluster.

TRY
# Run from the repository root, so that appsettings.json and patroni.yaml there are the content root's.
dotnet src/PatroniYarp/bin/Release/net10.0/PatroniYarp.dll patroni.yaml
