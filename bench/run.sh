#!/usr/bin/env bash
# bench/run.sh — PatroniYarp beside HAProxy 2.6 (Patroni's documented config) and a direct connection, on one
# machine, in one run, against the real 3-member cluster of scripts/patroni-cluster.sh.
#
#   bash bench/run.sh              full run (3 runs per figure, median; about 11 minutes)
#   bash bench/run.sh --quick      1 run per figure, shorter runs (a couple of minutes)
#   bash bench/run.sh --soak MIN   pgbench through the leader and replicas ports for MIN minutes with a switchover
#                                  every 30 s: errors, PatroniYarp's RSS over time, sessions leaked (admin /connections)
#   bash bench/run.sh --sessions N N idle sessions held through one PatroniYarp port to a loopback backend that
#                                  accepts and holds: all forwarded, none dropped (N ≤ ~9 000: 20 000 files/process)
#
# Figures (full/quick): P1 pgbench -S -c16 -j2 TPS through the leader port; P2 pgbench -S -C -c8 TPS (a new
# connection per transaction; as issue 5 gives it, without -j: one pgbench thread connects its clients in turn, so P2
# measures how long a connection takes to set up; until 2026-11-23 the bench ran it with -j2); P3 MB/s of a 1 GB COPY ... TO STDOUT through psql; P4 a switchover: failed attempts
# (split: at connect, an INSERT that reached a read-only server, an INSERT cut while it ran) and longest gap between
# successful writes for a loop that opens a new connection and INSERTs every 50 ms, through
# HAProxy, PatroniYarp and a libpq client listing all three nodes (target_session_attrs=read-write); P5 KiB of RSS per
# idle session (4 500 sessions to a loopback backend that accepts and holds); P6 cached /primary requests/s and p99
# (wrk -c16 10 s), Patroni's own API beside PatroniYarp's health route when it has one.
# P1-P3 also run through bench/floor-proxy.c, the least a user-space proxy can do (one epoll loop, recv and send,
# nothing else): no proxy beats it, so its ratio to direct bounds what a target for a proxy can ask. For P1 and P2 the
# table also gives each proxy's CPU time per transaction, and each run's PatroniYarp/HAProxy ratio (runs interleave,
# after an unrecorded warm-up of every target). PatroniYarp runs as shipped: its leader port keeps a spare backend
# connection ahead of the next client while clients come (preconnect: 1, the default since 2026-11-23); P2 and P4 also
# run through a second leader port with preconnect: 0, which connects only once a client has spoken.
#
# Needs root for apt-get (haproxy, wrk, postgresql-client, postgresql-contrib are installed when missing). Brings the
# cluster up if it is down and leaves it as it found it (a P4/soak switchover moves the leader; it stays healthy).
# Uses loopback ports 16432/16433/16435 (PatroniYarp), 18009 (its admin API), 15000/15001 (HAProxy), 15002 (floor proxy),
# 17000/17001 (holder); override the base with BENCH_PORT_BASE. Work files go to BENCH_DIR (default
# /tmp/patroniyarp-bench). With PATRONIYARP_CLUSTER_OFFSET=N it benches the cluster the script runs at that offset
# (ports + 10 × N).
set -Eeuo pipefail
trap 'echo "bench: error: unexpected failure (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
PATH="$PATH:/usr/sbin:/sbin"
root=$(cd "$(dirname "$0")/.." && pwd)
cluster="bash $root/scripts/patroni-cluster.sh"
dir="${BENCH_DIR:-/tmp/patroniyarp-bench}"
base="${BENCH_PORT_BASE:-0}"
py_leader=$((16432 + base)); py_replicas=$((16433 + base)); py_admin=$((18009 + base)); py_hold=$((16434 + base))
py_nopre=$((16435 + base))
ha_leader=$((15000 + base)); ha_hold=$((15001 + base)); floor_leader=$((15002 + base))
hold_port=$((17000 + base)); hold_api=$((17001 + base))
db=pybench
# The cluster's own ports move with PATRONIYARP_CLUSTER_OFFSET (10 × N), as scripts/patroni-cluster.sh moves them.
shift_=$((10 * ${PATRONIYARP_CLUSTER_OFFSET:-0}))
pg0=$((5441 + shift_)); pg1=$((5442 + shift_)); pg2=$((5443 + shift_))
api0=$((8011 + shift_)); api1=$((8012 + shift_)); api2=$((8013 + shift_))

mode=full; runs=3; secs=10; soak_min=0; sessions=0
case "${1:-}" in
  "") ;;
  --quick) mode=quick; runs=1; secs=5 ;;
  --soak) mode=soak; soak_min="${2:?--soak needs MINUTES}" ;;
  --sessions) mode=sessions; sessions="${2:?--sessions needs N}" ;;
  -h|--help) sed -n '2,/^set -E/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

log() { echo "bench: $*" >&2; }
mkdir -p "$dir"

# ---------------------------------------------------------------------------------------------------------------------
# Packages, cluster, processes
# ---------------------------------------------------------------------------------------------------------------------
need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v psql >/dev/null || need+=(postgresql-client)
command -v pgbench >/dev/null || need+=(postgresql-contrib)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi

started_cluster=0
if ! $cluster status >/dev/null 2>&1; then
  log "cluster not healthy: bringing it up"
  $cluster up >/dev/null
  started_cluster=1
fi

# Two files per proxied session: give every process we start this machine's whole allowance.
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # A cluster this run brought up goes down again; one that was running stays.
  if ((started_cluster)); then $cluster down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
start() { # start NAME CMD... — in the background, output to $dir/NAME.log; PID appended to pids
  local name=$1; shift
  setsid "$@" >"$dir/$name.log" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!"
}
wait_port() { # wait_port PORT WHAT
  local i
  for i in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "$2 did not listen on port $1; its log:"; cat "$dir"/*.log >&2; exit 1
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
leader_port() { $cluster port "$($cluster leader)"; }
# Plaintext: the test cluster has SSL on, and TLS would measure encryption rather than what a proxy adds.
pg() { echo "host=127.0.0.1 port=$1 user=postgres dbname=$db connect_timeout=10 sslmode=disable"; }
all_nodes="host=127.0.0.1,127.0.0.1,127.0.0.1 port=$pg0,$pg1,$pg2 user=postgres dbname=$db target_session_attrs=read-write connect_timeout=10 sslmode=disable"

log "building PatroniYarp (Release)"
dotnet build "$root/src/PatroniYarp" -c Release -nologo -v q >"$dir/build.log" 2>&1 || { cat "$dir/build.log" >&2; exit 1; }
gcc -O2 -o "$dir/floor-proxy" "$root/bench/floor-proxy.c"

start holder python3 "$root/bench/hold.py" backend "$hold_port" "$hold_api" "$dir/holder.status"
wait_port "$hold_port" "the holder backend"

# The health-check API in sidecar mode points at the leader's Patroni API (P6).
leader_api=$((api0 + $(leader_port) - pg0))
cat >"$dir/patroniyarp.yaml" <<EOF
cluster_update_interval: 3
listen_address: "127.0.0.1:$py_admin"
backend: {host: 127.0.0.1, port: $leader_api}
cache: {ttl: 1, interval: 0.25}
clusters:
  demo:
    hosts: ["http://127.0.0.1:$api0", "http://127.0.0.1:$api1", "http://127.0.0.1:$api2"]
    ports:
      master:
        listen: "127.0.0.1:$py_leader"
        roles: ["leader"]
      replicas:
        listen: "127.0.0.1:$py_replicas"
        roles: ["sync", "async"]
      master_no_preconnect:
        listen: "127.0.0.1:$py_nopre"
        roles: ["leader"]
        preconnect: 0
  hold:
    hosts: ["http://127.0.0.1:$hold_api"]
    ports:
      hold:
        listen: "127.0.0.1:$py_hold"
        roles: ["leader"]
        preconnect: 0 # the holder counts exactly the sessions forwarded (--sessions)
EOF
# Patroni's documented HAProxy config (docs: "HAProxy"), plus a plain listener in front of the holder for P5.
cat >"$dir/haproxy.cfg" <<EOF
global
    maxconn 9500
defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s
listen primary
    bind 127.0.0.1:$ha_leader
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
    server pg0 127.0.0.1:$pg0 maxconn 9000 check port $api0
    server pg1 127.0.0.1:$pg1 maxconn 9000 check port $api1
    server pg2 127.0.0.1:$pg2 maxconn 9000 check port $api2
listen hold
    bind 127.0.0.1:$ha_hold
    server hold 127.0.0.1:$hold_port maxconn 9000
EOF

# From the repository root (ASP.NET's content root): its appsettings.json sets the shipped log levels, which decide
# whether every HTTP request is logged (P6).
start patroniyarp env -C "$root" dotnet "$root/src/PatroniYarp/bin/Release/net10.0/PatroniYarp.dll" "$dir/patroniyarp.yaml"
wait_port "$py_leader" "PatroniYarp"
if [[ $mode == full || $mode == quick ]]; then
  start haproxy haproxy -f "$dir/haproxy.cfg" -db
  wait_port "$ha_leader" "HAProxy"
  # Pointed at the leader of now: P1-P3 run before P4's switchover.
  start floor "$dir/floor-proxy" "$floor_leader" "$(leader_port)"
  wait_port "$floor_leader" "the floor proxy"
fi

wait_routable() { # wait_routable PORT WHAT — until a session through PORT reaches the leader
  local i
  for i in $(seq 1 100); do
    [[ "$(psql "$(pg "$1")" -XAtc 'select pg_is_in_recovery()' 2>/dev/null)" == f ]] && return 0
    sleep 0.2
  done
  log "$2 does not reach the leader through port $1"; exit 1
}

prepare_db() {
  local lp; lp=$(leader_port)
  psql "host=127.0.0.1 port=$lp user=postgres" -XAtqc "select 1 from pg_database where datname = '$db'" | grep -q 1 \
    || psql "host=127.0.0.1 port=$lp user=postgres" -Xqc "create database $db"
  log "pgbench -i -s 10 on the leader"
  pgbench -i -s 10 -q "$(pg "$lp")" >"$dir/pgbench-init.log" 2>&1
  psql "$(pg "$lp")" -Xqc "create table if not exists bench_writes (id bigserial primary key, via text, at timestamptz default now())" >/dev/null
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "-"; else printf "%.2f×", a / b }'; }

# ---------------------------------------------------------------------------------------------------------------------
# P5 / --sessions: idle sessions through a proxy to the holder
# ---------------------------------------------------------------------------------------------------------------------
holder() { # holder accepted|open — the holder's count of sessions accepted so far, or open now
  local accepted=0 open=0
  [[ -e "$dir/holder.status" ]] && read -r accepted open <"$dir/holder.status"
  if [[ $1 == accepted ]]; then echo "$accepted"; else echo "$open"; fi
}
# hold_sessions PROXY_PID PORT N TAG — prints "idle_kib held_kib open dropped failed backend_count"; when it returns,
# the round's sessions are closed again (up to 60 s)
hold_sessions() {
  local pid=$1 port=$2 n=$3 tag=$4 idle held status i backend_before backend_now open_before
  backend_before=$(holder accepted); open_before=$(holder open)
  idle=$(rss_kib "$pid")
  setsid python3 "$root/bench/hold.py" clients 127.0.0.1 "$port" "$n" "$dir/clients-$tag.status" >"$dir/clients-$tag.log" 2>&1 &
  local cpid=$!
  for i in $(seq 1 600); do
    status=$(cat "$dir/clients-$tag.status" 2>/dev/null || true)
    backend_now=$(holder accepted)
    if [[ "$status" =~ open=([0-9]+)\ failed=([0-9]+) ]] && ((BASH_REMATCH[1] + BASH_REMATCH[2] >= n)) \
       && ((backend_now - backend_before >= BASH_REMATCH[1])); then
      break
    fi
    sleep 0.2
  done
  sleep 3 # let the proxy settle (and the clients notice any drop)
  held=$(rss_kib "$pid")
  status=$(cat "$dir/clients-$tag.status")
  backend_now=$(holder accepted)
  kill "$cpid"; wait "$cpid" 2>/dev/null || true
  for i in $(seq 1 300); do (($(holder open) <= open_before)) && break; sleep 0.2; done
  [[ "$status" =~ open=([0-9]+)\ failed=([0-9]+)\ dropped=([0-9]+) ]]
  echo "$idle $held ${BASH_REMATCH[1]} ${BASH_REMATCH[3]} ${BASH_REMATCH[2]} $((backend_now - backend_before))"
}

wait_sessions_gone() { # until PatroniYarp's /connections count is 0 (or 30 s); prints the count
  local i count=-1
  for i in $(seq 1 150); do
    count=$(curl -s "http://127.0.0.1:$py_admin/connections" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo -1)
    [[ $count == 0 ]] && break
    sleep 0.2
  done
  echo "$count"
}

if [[ $mode == sessions ]]; then
  log "holding $sessions idle sessions through PatroniYarp port $py_hold"
  read -r idle held open dropped failed at_backend < <(hold_sessions "$patroniyarp_pid" "$py_hold" "$sessions" sessions)
  # (The clients are gone by now, and so are their sessions: the holder closes its side when the proxy closes its.)
  printf '%s\n' "sessions asked:        $sessions" "opened by clients:     $open (failed $failed)" \
    "reached the backend:   $at_backend" "dropped while held:    $dropped" \
    "PatroniYarp RSS:       $((idle / 1024)) MiB idle -> $((held / 1024)) MiB held ($(( (held - idle) / (sessions > 0 ? sessions : 1) )) KiB/session)"
  if ((open == sessions && at_backend == sessions && dropped == 0)); then echo "PASS"; else echo "FAIL"; exit 1; fi
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------------------
# --soak
# ---------------------------------------------------------------------------------------------------------------------
if [[ $mode == soak ]]; then
  prepare_db
  wait_routable "$py_leader" "PatroniYarp"
  end=$(( $(date +%s) + soak_min * 60 ))
  : >"$dir/soak-rss.txt"
  soak_loop() { # soak_loop TAG PORT ARGS... — back-to-back 10 s pgbench runs until the end
    local tag=$1 port=$2; shift 2
    local i=0
    while (( $(date +%s) < end )); do
      i=$((i + 1))
      pgbench -n "$@" -c4 -j1 -T10 "$(pg "$port")" >"$dir/soak-$tag-$i.log" 2>&1 || true
    done
  }
  soak_loop rw "$py_leader" & rw=$!
  soak_loop ro "$py_replicas" -S & ro=$!
  switchovers=0; failed_switchovers=0; next=$(( $(date +%s) + 30 ))
  while (( $(date +%s) < end )); do
    echo "$(date +%s) $(rss_kib "$patroniyarp_pid")" >>"$dir/soak-rss.txt"
    if (( $(date +%s) >= next )); then
      if $cluster switchover >/dev/null 2>>"$dir/soak-switchover.log"; then switchovers=$((switchovers + 1)); else failed_switchovers=$((failed_switchovers + 1)); fi
      next=$(( $(date +%s) + 30 ))
    fi
    sleep 5
  done
  wait "$rw" "$ro"
  left=$(wait_sessions_gone)
  tx=$(cat "$dir"/soak-*.log | awk '/number of transactions actually processed/ { split($NF, a, "/"); s += a[1] } END { print s + 0 }')
  runs_total=$(ls "$dir"/soak-r?-*.log | wc -l)
  runs_failed=$(grep -l -E 'aborted|error|FATAL' "$dir"/soak-r?-*.log 2>/dev/null | wc -l)
  errors=$(grep -h -c -E 'client [0-9]+ aborted|ERROR|FATAL' "$dir"/soak-r?-*.log 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
  echo "soak: $soak_min min, $switchovers switchovers ($failed_switchovers failed), $tx transactions in $runs_total pgbench runs"
  echo "pgbench runs with an error: $runs_failed; error lines (aborted clients, ERROR, FATAL): $errors"
  echo "PatroniYarp RSS over time (MiB):"
  awk 'NR == 1 { t0 = $1 } { printf "  +%4ds %6.1f\n", $1 - t0, $2 / 1024 }' "$dir/soak-rss.txt" | awk 'NR % 6 == 1'
  echo "sessions leaked (admin /connections after the clients stopped): $left"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------------------
# P1–P6
# ---------------------------------------------------------------------------------------------------------------------
prepare_db
wait_routable "$ha_leader" "HAProxy"
wait_routable "$py_leader" "PatroniYarp"
wait_routable "$py_nopre" "PatroniYarp (preconnect: 0)"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime of every thread, in clock ticks
# tps PID ARGS... — pgbench through $port; prints "TPS µs" where µs is the CPU time of process PID (the proxy; none
# for direct) per transaction
tps() {
  local pid=$1 before after out; shift
  [[ $pid == - ]] || before=$(cpu_ticks "$pid")
  out=$(pgbench -n "$@" "$(pg "$port")" 2>&1)
  [[ $pid == - ]] || after=$(cpu_ticks "$pid")
  awk -v pid="$pid" -v ticks="$((${after:-0} - ${before:-0}))" -v hz="$(getconf CLK_TCK)" '
    /^number of transactions actually processed/ { split($NF, a, "/"); n = a[1] }
    /^tps/ { t = $3 }
    END { printf "%s %s\n", t == "" ? "nan" : t, (pid == "-" || n + 0 == 0) ? "-" : sprintf("%.0f", ticks / hz * 1e6 / n) }' <<<"$out"
}
copy_mbs() { # copy_mbs PORT — MB/s of the 1 GB COPY, timed around psql
  local s e
  s=$(date +%s%N)
  psql "$(pg "$1")" -Xqc "copy (select repeat('x', 1000) from generate_series(1, 1000000)) to stdout" >/dev/null
  e=$(date +%s%N)
  awk -v ns=$((e - s)) 'BEGIN { printf "%.1f", 1001000000 / 1e6 / (ns / 1e9) }'
}

declare -A P1 P2 P3 C1 C2
targets=(direct haproxy patroniyarp floor)
aim() { # aim TARGET — sets port and pid (the proxy's process; - for direct)
  case $1 in
    direct) port=$(leader_port); pid=- ;;
    haproxy) port=$ha_leader; pid=$haproxy_pid ;;
    patroniyarp) port=$py_leader; pid=$patroniyarp_pid ;;
    nopreconnect) port=$py_nopre; pid=$patroniyarp_pid ;;
    floor) port=$floor_leader; pid=$floor_pid ;;
  esac
}
# A proxy runs for days: what counts is its steady state, not its first seconds. PatroniYarp's code is compiled as it
# first runs (JIT, then tiered up), so a fresh process's first 5 s of new connections cost about twice the CPU of the
# next 5 s; every target gets the same unrecorded warm-up.
for target in "${targets[@]}"; do
  aim "$target"
  log "warm-up: $target"
  tps "$pid" -S -c16 -j2 -T3 >/dev/null
  tps "$pid" -S -C -c8 -T5 >/dev/null
done
aim nopreconnect
tps "$pid" -S -C -c8 -T5 >/dev/null
for run in $(seq 1 "$runs"); do
  # Interleaved, so that noise from the machine falls on all alike.
  for target in "${targets[@]}"; do
    aim "$target"
    log "run $run/$runs $target: P1"
    read -r t c < <(tps "$pid" -S -c16 -j2 -T"$secs"); P1[$target]+="$t "; C1[$target]+="$c "
    log "run $run/$runs $target: P2"
    read -r t c < <(tps "$pid" -S -C -c8 -T"$secs"); P2[$target]+="$t "; C2[$target]+="$c "
    log "run $run/$runs $target: P3"
    P3[$target]+="$(copy_mbs "$port") "
  done
  aim nopreconnect
  log "run $run/$runs PatroniYarp preconnect: 0: P2"
  read -r t c < <(tps "$pid" -S -C -c8 -T"$secs"); P2[nopreconnect]+="$t "; C2[nopreconnect]+="$c "
done
med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
# per_run A B — each run's A/B, in run order ("0.97×, 1.02×, …")
per_run() {
  local -a a b; local i out=""
  read -ra a <<<"$1"; read -ra b <<<"$2"
  for i in "${!a[@]}"; do out+="${out:+, }$(ratio "${a[$i]}" "${b[$i]}")"; done
  echo "$out"
}

# P4: three write loops across one switchover, in the same run.
attempt() { # attempt TAG CONNINFO — one new connection + one INSERT; appends "start_ms end_ms ok|fail-connect|fail-readonly|fail-running"
  local s e r=ok err
  s=$(date +%s%3N)
  if ! err=$(psql "$2" -XAtqc "insert into bench_writes (via) values ('$1')" 2>&1 >/dev/null); then
    # libpq says "connection to server at … failed" when the connect itself failed; "read-only transaction" is a write
    # sent to a replica. Anything else cut a session that was open: the old leader's fast shutdown ending an INSERT
    # already running (57P01), which no proxy can replay.
    if [[ $err == *"connection to server"*"failed"* ]]; then r=fail-connect
    elif [[ $err == *"read-only transaction"* ]]; then r=fail-readonly
    else r=fail-running; fi
    printf '%s\n' "$err" >>"$dir/p4-$1.err"
  fi
  e=$(date +%s%3N)
  echo "$s $e $r" >>"$dir/p4-$1.txt"
}
write_loop() { # write_loop TAG CONNINFO — an attempt every 50 ms (each its own background process) until $dir/p4.stop
  while [[ ! -e "$dir/p4.stop" ]]; do
    attempt "$1" "$2" &
    sleep 0.05
  done
  wait
}
gap_stats() { # gap_stats TAG — prints "failed longest_gap_s attempts at_connect on_a_replica while_running"
  awk '$3 == "ok" { print $2 } $3 ~ /^fail/ { f++; k[$3]++ }
       END { print "F", f + 0, k["fail-connect"] + 0, k["fail-readonly"] + 0, k["fail-running"] + 0 }' "$dir/p4-$1.txt" \
    | sort -g \
    | awk '$1 == "F" { f = $2; c = $3; o = $4; r = $5; next } { if (n++ && $1 - p > g) g = $1 - p; p = $1 }
           END { printf "%d %.2f %d %d %d %d\n", f, g / 1000, n + f, c, o, r }'
}
log "P4: switchover under three write loops"
rm -f "$dir"/p4-*.txt "$dir"/p4-*.err "$dir/p4.stop"
write_loop haproxy "$(pg "$ha_leader")" & l1=$!
write_loop patroniyarp "$(pg "$py_leader")" & l2=$!
write_loop libpq "$all_nodes" & l3=$!
# TLS is end to end: PatroniYarp cannot replay a startup the old leader refuses inside it (README, "Switchover").
write_loop patroniyarp-tls "$(pg "$py_leader") sslmode=require" & l4=$!
write_loop patroniyarp-no-preconnect "$(pg "$py_nopre")" & l5=$!
sleep 3
$cluster switchover >"$dir/p4-switchover.log" 2>&1
sleep 8
touch "$dir/p4.stop"; wait "$l1" "$l2" "$l3" "$l4" "$l5"
read -r ha_fail ha_gap ha_n ha_con ha_ro ha_run < <(gap_stats haproxy)
read -r py_fail py_gap py_n py_con py_ro py_run < <(gap_stats patroniyarp)
read -r lp_fail lp_gap lp_n lp_con lp_ro lp_run < <(gap_stats libpq)
read -r pt_fail pt_gap pt_n pt_con pt_ro pt_run < <(gap_stats patroniyarp-tls)
read -r pp_fail pp_gap pp_n pp_con pp_ro pp_run < <(gap_stats patroniyarp-no-preconnect)

# P5: idle sessions through each proxy to the holder (4 500; a proxy holds two files per session). One round: a second
# would measure how each process reuses the memory the first round freed (HAProxy's pools at once, .NET's heap only
# after a full collection), not what a session costs.
n5=4500
log "P5: $n5 idle sessions through HAProxy"
read -r ha_idle ha_held ha_open ha_drop _ _ < <(hold_sessions "$haproxy_pid" "$ha_hold" "$n5" haproxy)
log "P5: $n5 idle sessions through PatroniYarp"
read -r py_idle py_held py_open py_drop _ _ < <(hold_sessions "$patroniyarp_pid" "$py_hold" "$n5" patroniyarp)
kib() { awk -v i="$1" -v h="$2" -v n="$3" 'BEGIN { printf "%.1f", (h - i) / n }'; }
ha_kib=$(kib "$ha_idle" "$ha_held" "$n5"); py_kib=$(kib "$py_idle" "$py_held" "$n5")

# P6: cached /primary. Patroni's own API on the leader; PatroniYarp's only once it serves a health route.
wrk_run() { # wrk_run URL — prints "req_per_s p99_ms"
  wrk -c16 -t2 -d"$((secs))s" --latency "$1" 2>/dev/null | awk '
    /Requests\/sec/ { r = $2 }
    $1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } p = v }
    END { printf "%.0f %.2f\n", r, p }'
}
log "P6: wrk on Patroni's /primary"
read -r pat_rps pat_p99 < <(wrk_run "http://127.0.0.1:$leader_api/primary")
health_url="${BENCH_HEALTH_URL:-http://127.0.0.1:$py_admin/primary}"
code=$(curl -s -o /dev/null -w '%{http_code}' "$health_url" || true)
if [[ $code == 200 || $code == 503 ]]; then
  log "P6: wrk on PatroniYarp's $health_url"
  read -r py_rps py_p99 < <(wrk_run "$health_url")
  p6_py="$py_rps req/s, p99 $py_p99 ms"
else
  p6_py="n/a (health API not merged)"
fi

# ---------------------------------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------------------------------
for k in "${targets[@]}"; do
  eval "p1_$k=$(med "${P1[$k]}"); p2_$k=$(med "${P2[$k]}"); p3_$k=$(med "${P3[$k]}")"
done
# row LABEL FORMAT N — one P1-P3 row; N is 1, 2 or 3
row() {
  local n=$3 d h p f
  eval "d=\$p${n}_direct h=\$p${n}_haproxy p=\$p${n}_patroniyarp f=\$p${n}_floor"
  local -n runs_="P$n"
  printf "| %s | $2 | $2 | $2 | $2 | %s | %s | %s | %s | %s |\n" "$1" "$d" "$h" "$p" "$f" "$(ratio "$p" "$d")" \
    "$(ratio "$p" "$h")" "$(per_run "${runs_[patroniyarp]}" "${runs_[haproxy]}")" "$(ratio "$h" "$d")" "$(ratio "$f" "$d")"
}
echo
echo "PatroniYarp bench ($mode: median of $runs run(s), ${secs}s each; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "| Figure | direct | HAProxy 2.6 | PatroniYarp | floor proxy | PY/direct | PY/HAProxy | PY/HAProxy each run | HAProxy/direct | floor/direct |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row "P1 pgbench -S -c16 -j2 (TPS)" "%.0f" 1
row "P2 pgbench -S -C -c8 (TPS)" "%.0f" 2
p2_pre=$(med "${P2[nopreconnect]}")
printf "| P2, PatroniYarp with preconnect: 0 (TPS) | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s |\n" "$p2_direct" "$p2_haproxy" \
  "$p2_pre" "$p2_floor" "$(ratio "$p2_pre" "$p2_direct")" "$(ratio "$p2_pre" "$p2_haproxy")" \
  "$(per_run "${P2[nopreconnect]}" "${P2[haproxy]}")" "$(ratio "$p2_haproxy" "$p2_direct")" "$(ratio "$p2_floor" "$p2_direct")"
row "P3 COPY 1 GB to stdout (MB/s)" "%s" 3
echo
echo "| Proxy CPU per transaction (µs, median) | HAProxy 2.6 | PatroniYarp | floor proxy |"
echo "|---|---|---|---|"
echo "| P1 | $(med "${C1[haproxy]}") | $(med "${C1[patroniyarp]}") | $(med "${C1[floor]}") |"
echo "| P2 | $(med "${C2[haproxy]}") | $(med "${C2[patroniyarp]}") | $(med "${C2[floor]}") |"
echo "| P2, PatroniYarp with preconnect: 0 | | $(med "${C2[nopreconnect]}") | |"
echo
echo "| P4 switchover (new connection + INSERT every 50 ms) | failed attempts | at connect | INSERT on a read-only server | cut while the INSERT ran | longest write gap |"
echo "|---|---|---|---|---|---|"
echo "| libpq, all three nodes, target_session_attrs=read-write | $lp_fail of $lp_n | $lp_con | $lp_ro | $lp_run | ${lp_gap} s |"
echo "| HAProxy 2.6 | $ha_fail of $ha_n | $ha_con | $ha_ro | $ha_run | ${ha_gap} s |"
echo "| PatroniYarp | $py_fail of $py_n | $py_con | $py_ro | $py_run | ${py_gap} s ($(ratio "$py_gap" "$lp_gap") libpq's) |"
echo "| PatroniYarp, TLS (sslmode=require: no startup replay) | $pt_fail of $pt_n | $pt_con | $pt_ro | $pt_run | ${pt_gap} s |"
echo "| PatroniYarp, preconnect: 0 | $pp_fail of $pp_n | $pp_con | $pp_ro | $pp_run | ${pp_gap} s ($(ratio "$pp_gap" "$lp_gap") libpq's) |"
echo
echo "| P5 idle sessions ($n5) | RSS idle | RSS holding | KiB per session | dropped |"
echo "|---|---|---|---|---|"
echo "| HAProxy 2.6 | $((ha_idle / 1024)) MiB | $((ha_held / 1024)) MiB | $ha_kib | $ha_drop (open $ha_open) |"
echo "| PatroniYarp | $((py_idle / 1024)) MiB | $((py_held / 1024)) MiB | $py_kib | $py_drop (open $py_open) |"
echo
echo "| P6 cached /primary (wrk -c16, ${secs}s) | result |"
echo "|---|---|"
echo "| Patroni's own API | $pat_rps req/s, p99 $pat_p99 ms |"
echo "| PatroniYarp | $p6_py |"
