#!/usr/bin/env bash
# patroni-cluster.sh — a real 3-member Patroni cluster (etcd 3.4 + Patroni 3.0.2 + PostgreSQL 15, Debian 12
# packages) on loopback, for PatroniYarp's integration tests and the demo.
#
#   scripts/patroni-cluster.sh up | down | status | leader | port NAME | switchover [CANDIDATE] | failover-kill
#                              | sync on|off | tag NAME KEY VALUE | untag NAME KEY | stop-member NAME
#                              | start-member NAME | walreceiver-stop NAME | walreceiver-cont NAME | psql NAME [ARGS]
#                              | etcd-stop | etcd-start
#
# Results go to stdout (a member name, a port, ...); progress and errors go to stderr, so callers can parse stdout.
# Every process is started by this script as the unprivileged `postgres` user (PostgreSQL refuses to run as root)
# and is stopped again by the PID recorded in a pidfile, never by name.
set -Eeuo pipefail
# Never exit silently: name the command that failed unexpectedly (expected failures go through die()).
trap 'echo "patroni-cluster: error: unexpected failure (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

# haproxy, su and runuser live in sbin, which a caller's PATH (e.g. a test runner's) may lack.
PATH="$PATH:/usr/sbin:/sbin:/usr/bin:/bin"
# PATRONIYARP_CLUSTER_OFFSET=N (0-9) runs a second, independent cluster beside the first: every port moves up by
# 10 × N and the directory gets a suffix, so tests can run while the demo cluster (offset 0) is up.
OFFSET="${PATRONIYARP_CLUSTER_OFFSET:-0}"
[[ "$OFFSET" =~ ^[0-9]$ ]] || { echo "patroni-cluster: error: PATRONIYARP_CLUSTER_OFFSET must be a digit 0-9" >&2; exit 1; }
SHIFT=$((OFFSET * 10))
if [[ "$OFFSET" == 0 ]]; then DEFAULT_DIR=/tmp/patroniyarp-cluster; else DEFAULT_DIR=/tmp/patroniyarp-cluster-$OFFSET; fi
CLUSTER_DIR="${PATRONIYARP_CLUSTER_DIR:-$DEFAULT_DIR}"
PG_BIN=/usr/lib/postgresql/15/bin
# Debian's Python: Patroni depends on it (and on python3-yaml), so it is always there, unlike jq; the absolute path
# keeps pyenv/virtualenv shims on root's PATH out of the way.
PY=/usr/bin/python3
RUN_AS=postgres
SCOPE=demo
NAMESPACE=/patroniyarp/
ETCD_CLIENT_PORT=$((12379 + SHIFT))
ETCD_PEER_PORT=$((12380 + SHIFT))
MEMBERS=(pg0 pg1 pg2)
declare -A PG_PORT=([pg0]=$((5441 + SHIFT)) [pg1]=$((5442 + SHIFT)) [pg2]=$((5443 + SHIFT)))
declare -A API_PORT=([pg0]=$((8011 + SHIFT)) [pg1]=$((8012 + SHIFT)) [pg2]=$((8013 + SHIFT)))
API_PORTS_CSV="${API_PORT[pg0]},${API_PORT[pg1]},${API_PORT[pg2]}"
UP_TIMEOUT=120
SWITCHOVER_TIMEOUT=60
STOP_TIMEOUT=30
# A clean, minimal environment for everything we start: Patroni reads PATRONI_* variables as configuration and libpq
# reads PG*, so nothing from the caller's environment may leak into the cluster.
CLEAN_ENV="env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/var/lib/postgresql LANG=C.UTF-8"

# The path is pasted into `su -c` command lines and YAML; keep it to characters that need no quoting.
[[ "$CLUSTER_DIR" =~ ^/[A-Za-z0-9._/-]+$ ]] || { echo "patroni-cluster: error: PATRONIYARP_CLUSTER_DIR must be an absolute path of [A-Za-z0-9._/-]" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------------

log() { echo "patroni-cluster: $*" >&2; }
die() { echo "patroni-cluster: error: $*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $(basename "$0") COMMAND [ARGS]

  up                        install missing packages, start etcd + pg0/pg1/pg2, wait until healthy (idempotent)
  down                      stop everything this script started (by PID) and remove the cluster dir (idempotent)
  status                    patronictl list; exit 0 if 1 leader + 2 streaming replicas, 1 otherwise
  leader                    print the leader's member name
  port NAME                 print member NAME's PostgreSQL port
  switchover [CANDIDATE]    planned switchover; waits until the old leader serves as a replica; prints new leader
  failover-kill             kill -9 the leader's postmaster; prints the old leader (does not wait)
  sync on|off               turn Patroni's synchronous_mode on/off and wait for the sync_standby role to (dis)appear
  tag NAME KEY VALUE        set a Patroni tag on member NAME (VALUE is YAML: true, 5, text) and wait for /cluster
  untag NAME KEY            remove a Patroni tag from member NAME and wait for /cluster
  stop-member NAME          SIGTERM member NAME's Patroni and wait until it has exited
  start-member NAME         start member NAME's Patroni again and wait until it serves
  walreceiver-stop NAME     SIGSTOP the walreceiver of replica NAME (makes replication lag grow)
  walreceiver-cont NAME     SIGCONT it again
  psql NAME [ARGS...]       run psql as postgres against member NAME on 127.0.0.1
  etcd-stop                 SIGTERM etcd and wait until it has exited (Patroni loses its DCS; PostgreSQL keeps running)
  etcd-start                start etcd again on its data and wait until it is healthy (the cluster recovers on its own)

Cluster directory: $CLUSTER_DIR (override with PATRONIYARP_CLUSTER_DIR).
Members: pg0 ${PG_PORT[pg0]}/${API_PORT[pg0]}, pg1 ${PG_PORT[pg1]}/${API_PORT[pg1]}, pg2 ${PG_PORT[pg2]}/${API_PORT[pg2]}; etcd 127.0.0.1:$ETCD_CLIENT_PORT; scope $SCOPE.
Offset: $OFFSET (PATRONIYARP_CLUSTER_OFFSET=N moves every port up by 10 × N for an independent second cluster).
EOF
    exit 2
}

now_ms() { date +%s%3N; }
elapsed_s() { local start=$1; awk -v ms="$(($(now_ms) - start))" 'BEGIN { printf "%.1f", ms / 1000 }'; }

is_member() { [[ -n "${PG_PORT[$1]+x}" ]]; }
require_member() {
    [[ $# -ge 1 && -n "$1" ]] || usage
    is_member "$1" || die "unknown member '$1' (expected one of: ${MEMBERS[*]})"
}

member_config() { echo "$CLUSTER_DIR/$1.yml"; }
member_datadir() { echo "$CLUSTER_DIR/$1/data"; }
pidfile() { echo "$CLUSTER_DIR/$1.pid"; }

# Run a shell command line as the postgres user. su needs root; if we already are postgres, run it directly.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        su "$RUN_AS" -s /bin/bash -c "$1"
    elif [[ "$(id -un)" == "$RUN_AS" ]]; then
        bash -c "$1"
    else
        die "must run as root or as $RUN_AS"
    fi
}

require_privileges() {
    [[ $EUID -eq 0 || "$(id -un)" == "$RUN_AS" ]] || die "must run as root or as $RUN_AS"
}

# True if PID is alive and its command line contains PATTERN. Guards against a pidfile whose PID has since been
# reused by an unrelated process: we only ever signal processes that are recognisably ours.
proc_matches() {
    local pid=$1 pattern=$2
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# PID from a pidfile, printed only if that process is still ours and alive.
live_pid() {
    local file=$1 pattern=$2 pid
    [[ -f "$file" ]] || return 1
    pid=$(head -n1 "$file" 2>/dev/null || true)
    proc_matches "$pid" "$pattern" || return 1
    echo "$pid"
}

patroni_pid() { live_pid "$(pidfile "$1")" "$(member_config "$1")"; }
etcd_pid() { live_pid "$CLUSTER_DIR/etcd.pid" "--data-dir $CLUSTER_DIR/etcd"; }

# The postmaster's PID is the first line of postmaster.pid in the data dir (Patroni starts PostgreSQL itself).
postmaster_pid() {
    live_pid "$(member_datadir "$1")/postmaster.pid" "-D $(member_datadir "$1")"
}

# Alive and not a zombie: our daemons are reparented to PID 1 (they setsid and su exits), and a container's PID 1
# may reap exited children only after a while; `kill -0` still succeeds on a zombie.
pid_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1   # field after "(comm)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# Wait until PID has exited; returns 1 after TIMEOUT seconds.
wait_pid_gone() {
    local pid=$1 timeout=$2 deadline
    deadline=$(($(now_ms) + timeout * 1000))
    while pid_alive "$pid"; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.2
    done
}

# Poll a command (quietly) until it succeeds; returns 1 after TIMEOUT seconds.
wait_for() {
    local timeout=$1 deadline
    shift
    deadline=$(($(now_ms) + timeout * 1000))
    until "$@" >/dev/null 2>&1; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.5
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Bounded: with etcd unreachable patronictl retries for ever.
patronictl_() { $CLEAN_ENV timeout "${patronictl_timeout:-120}" patronictl -c "$(member_config pg0)" "$@"; }

# ---------------------------------------------------------------------------------------------------------------------
# Reading the cluster's state from Patroni's REST API
# ---------------------------------------------------------------------------------------------------------------------

# query MODE [ARGS]: asks Patroni's REST API (/cluster from any member that answers, /patroni of the leader).
#   leader                 print the leader's name (exit 1 if none)
#   healthy                exit 0 if 1 running leader + 2 serving replicas (one of them sync_standby when
#                          synchronous_mode is on)
#   serving NAME           exit 0 if NAME is the running leader or a serving replica: running, seen streaming by
#                          the leader, lag <= 1 MiB
#   sync-standbys          print the members whose role is sync_standby
#   tag NAME KEY [VALUE]   exit 0 if NAME's tag KEY equals YAML VALUE (or, without VALUE, is absent)
#   summary                print one line per member
# A replica's `state` is `running` in Patroni 3.0.2 as soon as PostgreSQL accepts connections, even before it
# streams, so "serving" also requires the leader's pg_stat_replication (in /patroni `replication`) to list it as
# streaming.
query() {
    "$PY" - "$API_PORTS_CSV" "$@" <<'PYEOF'
import json, sys, urllib.error, urllib.request

ports, mode, args = sys.argv[1].split(','), sys.argv[2], sys.argv[3:]
MAX_LAG = 1048576   # Patroni's default maximum_lag_on_failover

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:   # Patroni answers 503 with a JSON body on unhealthy members
        return json.load(e)

def first_answer(path, default):
    for p in ports:
        try:
            return get('http://127.0.0.1:%s%s' % (p, path))
        except Exception:
            continue
    return default

def cluster():
    return first_answer('/cluster', {'members': []})

members = cluster().get('members', [])
leader = next((m for m in members if m.get('role') == 'leader'), None)

def streaming_names():
    if not leader or leader.get('state') != 'running':
        return set()
    try:
        body = get(leader['api_url'])
    except Exception:
        return set()
    return {r.get('application_name') for r in body.get('replication', []) if r.get('state') == 'streaming'}

def serving(m, streaming):
    if m is leader:
        return m.get('state') == 'running'
    # Patroni publishes a replica's lag once per loop; right after a clone it can still show a whole WAL segment.
    return (m.get('role') in ('replica', 'sync_standby') and m.get('state') in ('running', 'streaming')
            and m['name'] in streaming and isinstance(m.get('lag'), int) and m['lag'] <= MAX_LAG)

if mode == 'leader':
    if not leader:
        sys.exit(1)
    print(leader['name'])
elif mode == 'healthy':
    streaming = streaming_names()
    ok = (leader is not None and len(members) == 3 and all(serving(m, streaming) for m in members))
    # In synchronous mode the leader must have chosen its sync standby again (e.g. after a switchover).
    if ok and first_answer('/config', {}).get('synchronous_mode'):
        ok = any(m.get('role') == 'sync_standby' for m in members)
    sys.exit(0 if ok else 1)
elif mode == 'serving':
    m = next((m for m in members if m['name'] == args[0]), None)
    sys.exit(0 if m is not None and serving(m, streaming_names()) else 1)
elif mode == 'sync-standbys':
    print(' '.join(m['name'] for m in members if m.get('role') == 'sync_standby'))
elif mode == 'tag':
    import yaml
    name, key = args[0], args[1]
    m = next((m for m in members if m['name'] == name), None)
    if m is None:
        sys.exit(1)
    tags = m.get('tags', {})
    if len(args) > 2:
        want = yaml.safe_load(args[2])
        # Patroni drops these four tags from what it publishes when they are false.
        if key in ('clonefrom', 'nofailover', 'noloadbalance', 'nosync') and not want:
            sys.exit(0 if key not in tags else 1)
        sys.exit(0 if key in tags and tags[key] == want else 1)
    sys.exit(0 if key not in tags else 1)
elif mode == 'summary':
    streaming = streaming_names()
    for m in members:
        print('%-4s %-12s %-10s lag=%-8s tags=%s%s' % (m['name'], m.get('role'), m.get('state'), m.get('lag', '-'),
              json.dumps(m.get('tags', {})), '' if serving(m, streaming) else '  (not serving)'))
else:
    sys.exit('unknown query ' + mode)
PYEOF
}

current_leader() { query leader; }

# ---------------------------------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------------------------------

ensure_packages() {
    local missing=()
    command -v patroni >/dev/null && command -v patronictl >/dev/null || missing+=(patroni)
    command -v etcd >/dev/null || missing+=(etcd-server)
    [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/pg_ctl" ]] || missing+=(postgresql postgresql-contrib)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v ps >/dev/null || missing+=(procps)
    [[ -x "$PY" ]] && "$PY" -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
    ((${#missing[@]} == 0)) && return 0

    [[ $EUID -eq 0 ]] || die "missing packages (${missing[*]}) and not root: install them with apt-get"
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2 || die "apt-get update failed"
    apt-get install -y "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
    [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL 15 binaries not found in $PG_BIN after installing"
}

# Self-signed certificate for `ssl: on`. PostgreSQL refuses a key file that is group/world readable.
make_certificate() {
    local ssl="$CLUSTER_DIR/ssl"
    mkdir -p "$ssl"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" \
        -keyout "$ssl/server.key" -out "$ssl/server.crt" 2>/dev/null || die "openssl could not create a certificate"
    chown -R "$RUN_AS:" "$ssl"
    chmod 0600 "$ssl/server.key"
    chmod 0644 "$ssl/server.crt"
}

write_member_config() {
    local name=$1 cfg
    cfg=$(member_config "$name")
    mkdir -p "$CLUSTER_DIR/$name"
    cat >"$cfg" <<EOF
scope: $SCOPE
namespace: $NAMESPACE
name: $name

restapi:
  listen: 127.0.0.1:${API_PORT[$name]}
  connect_address: 127.0.0.1:${API_PORT[$name]}

etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT_PORT

bootstrap:
  # Written to the DCS once, by whichever member initialises the cluster.
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    # A crashed primary fails over at once instead of being restarted in place for up to 300 s, so that
    # \`failover-kill\` really moves the leader.
    primary_start_timeout: 0
    synchronous_mode: false
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        ssl: 'on'
        ssl_cert_file: $CLUSTER_DIR/ssl/server.crt
        ssl_key_file: $CLUSTER_DIR/ssl/server.key
        max_connections: 200
        wal_level: replica
        hot_standby: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        # A replica that could not stream (slot not created yet, leader switched over) retries after this
        # interval; the default 5 s dominates bootstrap and switchover times.
        wal_retrieve_retry_interval: 1s
      # Loopback only, trusted; \`host\` lines also match SSL connections.
      pg_hba:
        - local all all trust
        - local replication all trust
        - host all all 127.0.0.1/32 trust
        - host all all ::1/128 trust
        - host replication all 127.0.0.1/32 trust
        - host replication all ::1/128 trust
  initdb:
    - encoding: UTF8
    - locale: C

postgresql:
  listen: 127.0.0.1,::1:${PG_PORT[$name]}
  connect_address: 127.0.0.1:${PG_PORT[$name]}
  data_dir: $(member_datadir "$name")
  bin_dir: $PG_BIN
  pgpass: $CLUSTER_DIR/$name/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
  parameters:
    # Our own socket directory: /var/run/postgresql may not exist (no systemd) and belongs to the system cluster.
    unix_socket_directories: $CLUSTER_DIR/$name

tags: {}
EOF
    chown -R "$RUN_AS:" "$CLUSTER_DIR/$name" "$cfg"
    chmod 0600 "$cfg"
}

# Start a process as postgres in its own session, logging to LOG, recording its own PID in PIDFILE.
# `cd DIR; setsid cmd &` (not `cd DIR && cmd &`, which would background a subshell): setsid execs in place because a
# background job of a non-interactive shell is not a process-group leader, so $! is the daemon's PID.
spawn_as_pg() {
    local pidf=$1 logf=$2
    shift 2
    as_pg "cd '$CLUSTER_DIR'; $CLEAN_ENV setsid $* >>'$logf' 2>&1 </dev/null & echo \$! >'$pidf'"
}

spawn_etcd() {
    log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT"
    spawn_as_pg "$CLUSTER_DIR/etcd.pid" "$CLUSTER_DIR/etcd.log" etcd \
        --name etcd0 --data-dir "'$CLUSTER_DIR/etcd'" --logger zap \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "etcd0=http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster-state new --initial-cluster-token patroniyarp
}

start_etcd() {
    spawn_etcd || fail_up "could not start etcd"
    wait_up 30 "etcd health" etcd_healthy
}

etcd_healthy() { curl -sf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'; }

start_member() {
    local name=$1
    log "starting Patroni member $name (PostgreSQL 127.0.0.1:${PG_PORT[$name]}, REST 127.0.0.1:${API_PORT[$name]})"
    spawn_as_pg "$(pidfile "$name")" "$CLUSTER_DIR/$name.log" patroni "'$(member_config "$name")'" ||
        { log "could not start $name's Patroni"; return 1; }
}

leader_is() { [[ "$(current_leader 2>/dev/null)" == "$1" ]] && query serving "$1"; }

print_logs() {
    local f
    for f in "$CLUSTER_DIR"/etcd.log "$CLUSTER_DIR"/pg?.log; do
        [[ -f "$f" ]] || continue
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2
    done
}

# A failed `up`: show why, stop what we started (no stray processes in CI), keep the logs for inspection.
fail_up() {
    log "up failed: $1"
    query summary >&2 2>/dev/null || true
    print_logs
    stop_everything
    die "$1 (logs kept in $CLUSTER_DIR)"
}

# A started daemon that has exited will not come back by waiting longer: name it.
dead_daemon() {
    local m
    [[ -f "$CLUSTER_DIR/etcd.pid" ]] && ! etcd_pid >/dev/null && { echo etcd; return 0; }
    for m in "${MEMBERS[@]}"; do
        [[ -f "$(pidfile "$m")" ]] && ! patroni_pid "$m" >/dev/null && { echo "$m's Patroni"; return 0; }
    done
    return 1
}

# wait_up TIMEOUT WHAT CMD...: like wait_for, but fails the `up` at once when one of our daemons has died.
wait_up() {
    local timeout=$1 what=$2 deadline dead
    shift 2
    deadline=$(($(now_ms) + timeout * 1000))
    until "$@" >/dev/null 2>&1; do
        dead=$(dead_daemon) && fail_up "$dead exited while waiting for $what"
        (($(now_ms) < deadline)) || fail_up "$what not reached within $timeout s"
        sleep 0.5
    done
}

any_process_alive() {
    local m
    etcd_pid >/dev/null && return 0
    for m in "${MEMBERS[@]}"; do
        patroni_pid "$m" >/dev/null && return 0
        postmaster_pid "$m" >/dev/null && return 0
    done
    return 1
}

# fresh_start START_MS: build and start a new cluster from nothing.
fresh_start() {
    local p m
    for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "${PG_PORT[@]}" "${API_PORT[@]}"; do
        port_in_use "$p" && die "port 127.0.0.1:$p is already in use by another process (not this script's cluster)"
    done
    rm -rf "$CLUSTER_DIR"
    mkdir -p "$CLUSTER_DIR"
    chown "$RUN_AS:" "$CLUSTER_DIR"
    chmod 0700 "$CLUSTER_DIR"
    as_pg "test -w '$CLUSTER_DIR'" 2>/dev/null ||
        { rm -rf "$CLUSTER_DIR"; die "$RUN_AS cannot use $CLUSTER_DIR (is a parent directory closed to it?)"; }
    make_certificate
    for m in "${MEMBERS[@]}"; do write_member_config "$m"; done

    start_etcd
    log "etcd healthy after $(elapsed_s "$1") s"
    # pg0 alone first: it runs initdb and takes the leader key without a race; the others then clone from it.
    start_member pg0 || fail_up "could not start pg0"
    wait_up "$UP_TIMEOUT" "pg0 as running leader" leader_is pg0
    log "pg0 leader after $(elapsed_s "$1") s"
    start_member pg1 || fail_up "could not start pg1"
    start_member pg2 || fail_up "could not start pg2"
}

cmd_up() {
    local start m
    start=$(now_ms)
    require_privileges
    ensure_packages

    if any_process_alive; then
        if query healthy; then
            echo "cluster already up and healthy (leader $(current_leader))"
            return 0
        fi
        if etcd_pid >/dev/null && [[ -f "$(member_config pg0)" ]]; then
            # Left partly stopped (stop-member, walreceiver-stop): resume and start what is missing instead of
            # rebuilding.
            for m in "${MEMBERS[@]}"; do
                continue_children "$m"
                patroni_pid "$m" >/dev/null || start_member "$m" || fail_up "could not start $m"
            done
        else
            log "found a broken cluster from a previous run; tearing it down"
            stop_everything
            fresh_start "$start"
        fi
    else
        [[ -e "$CLUSTER_DIR" ]] && log "removing stale $CLUSTER_DIR from a previous run"
        fresh_start "$start"
    fi

    wait_up "$UP_TIMEOUT" "a healthy cluster" query healthy
    query summary >&2
    echo "cluster up in $(elapsed_s "$start") s (leader $(current_leader))"
}

# ---------------------------------------------------------------------------------------------------------------------
# down / stop-member
# ---------------------------------------------------------------------------------------------------------------------

# Children of PID: /proc's children lists (one per thread of PID), else ps.
children_of() {
    local pid=$1
    if [[ -r "/proc/$pid/task/$pid/children" ]]; then
        cat "/proc/$pid/task/"*/children 2>/dev/null || true
    else
        ps -o pid= --ppid "$pid" 2>/dev/null || true
    fi
}

# A SIGSTOPped walreceiver (walreceiver-stop) would never act on the postmaster's shutdown request; wake all of the
# postmaster's children first.
continue_children() {
    local pm child
    pm=$(postmaster_pid "$1") || return 0
    for child in $(children_of "$pm"); do
        kill -CONT "$child" 2>/dev/null || true
    done
}

# Stop a PostgreSQL that outlived its Patroni: immediate shutdown (SIGQUIT) first, which also takes the backends
# down, then SIGKILL.
kill_postmaster() {
    local name=$1 pm
    pm=$(postmaster_pid "$name") || return 0
    log "postmaster of $name (pid $pm) outlived Patroni; SIGQUIT"
    kill -QUIT "$pm" 2>/dev/null || true
    wait_pid_gone "$pm" 10 && return 0
    log "postmaster of $name (pid $pm) still alive; SIGKILL"
    kill -KILL "$pm" 2>/dev/null || true
    wait_pid_gone "$pm" 5 || true
}

# SIGTERM the given members' Patroni processes together (Patroni stops its own PostgreSQL), wait up to STOP_TIMEOUT
# for each, SIGKILL stragglers, then clean up any postmaster left behind.
stop_members() {
    local m pid
    declare -A pids=()
    for m in "$@"; do
        continue_children "$m"
        if pid=$(patroni_pid "$m"); then
            log "stopping $m (Patroni pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids[$m]=$pid
        fi
    done
    for m in "${!pids[@]}"; do
        pid=${pids[$m]}
        if ! wait_pid_gone "$pid" "$STOP_TIMEOUT"; then
            log "$m (Patroni pid $pid) did not stop within ${STOP_TIMEOUT} s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 5 || true
        fi
    done
    for m in "$@"; do
        kill_postmaster "$m"
        rm -f "$(pidfile "$m")"
    done
}

stop_etcd() {
    local pid
    pid=$(etcd_pid) || return 0
    log "stopping etcd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_gone "$pid" "$STOP_TIMEOUT"; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_gone "$pid" 5 || true
    fi
    rm -f "$CLUSTER_DIR/etcd.pid"
}

stop_everything() {
    local leader m replicas=()
    [[ -d "$CLUSTER_DIR" ]] || return 0
    # Replicas first, then the leader: stopping the leader first would make the replicas race for leadership
    # while they are being stopped.
    leader=$(current_leader 2>/dev/null || true)
    for m in "${MEMBERS[@]}"; do [[ "$m" == "$leader" ]] || replicas+=("$m"); done
    stop_members "${replicas[@]}"
    [[ -n "$leader" ]] && stop_members "$leader"
    stop_etcd
}

cmd_down() {
    require_privileges
    if [[ ! -e "$CLUSTER_DIR" ]]; then
        echo "cluster is down (no $CLUSTER_DIR)"
        return 0
    fi
    stop_everything
    any_process_alive && die "some cluster processes are still alive; not removing $CLUSTER_DIR"
    rm -rf "$CLUSTER_DIR"
    echo "cluster is down"
}

cmd_stop_member() {
    local name=$1 pid
    require_member "$name"
    require_privileges
    pid=$(patroni_pid "$name") || { echo "$name is not running"; return 0; }
    stop_members "$name"
    pid_alive "$pid" && die "$name (pid $pid) is still running"
    echo "$name stopped"
}

cmd_start_member() {
    local name=$1 start
    require_member "$name"
    require_privileges
    [[ -f "$(member_config "$name")" ]] || die "no cluster in $CLUSTER_DIR (run 'up' first)"
    start=$(now_ms)
    if patroni_pid "$name" >/dev/null; then
        log "$name is already running"
    else
        start_member "$name" || die "could not start $name"
    fi
    wait_for "$UP_TIMEOUT" query serving "$name" || { query summary >&2 || true; tail -n 40 "$CLUSTER_DIR/$name.log" >&2; die "$name does not serve after ${UP_TIMEOUT} s"; }
    echo "$name serving ($(elapsed_s "$start") s)"
}

# ---------------------------------------------------------------------------------------------------------------------
# Other commands
# ---------------------------------------------------------------------------------------------------------------------

require_cluster() { [[ -f "$(member_config pg0)" ]] || die "no cluster in $CLUSTER_DIR (run 'up' first)"; }

cmd_status() {
    require_cluster
    # Left behind by a reboot or a killed run: patronictl would retry the missing etcd for ever.
    etcd_pid >/dev/null || { echo "cluster is down (etcd is not running; 'up' starts it again)"; return 1; }
    patronictl_timeout=15 patronictl_ list || true
    query summary
    if query healthy; then
        echo "healthy"
    else
        echo "NOT healthy (expected 1 running leader + 2 replicas streaming with lag <= 1 MiB)"
        return 1
    fi
}

cmd_leader() {
    require_cluster
    current_leader || die "the cluster has no leader right now"
}

new_leader_running() {
    local old=$1 want=$2 now
    now=$(current_leader) || return 1
    [[ "$now" != "$old" ]] || return 1
    [[ -z "$want" || "$now" == "$want" ]] || return 1
    query serving "$now"
}

# The new leader runs, and every other member, including the demoted old leader, serves as a replica again.
new_leader_settled() { new_leader_running "$@" && query healthy; }

cmd_switchover() {
    local candidate=${1:-} old start args
    require_cluster
    [[ -z "$candidate" ]] || require_member "$candidate"
    old=$(current_leader) || die "the cluster has no leader to switch over from"
    [[ "$candidate" != "$old" ]] || die "$candidate is already the leader"
    start=$(now_ms)
    # Patroni 3.0.2: --leader (aliases --primary, --master) names the current leader; with --force and no
    # --candidate Patroni picks the healthiest replica.
    args=(switchover --force --leader "$old")
    [[ -n "$candidate" ]] && args+=(--candidate "$candidate")
    patronictl_ "${args[@]}" "$SCOPE" >&2 || die "patronictl switchover failed"
    wait_for "$SWITCHOVER_TIMEOUT" new_leader_running "$old" "$candidate" ||
        { query summary >&2 || true; die "no new leader within ${SWITCHOVER_TIMEOUT} s"; }
    log "new leader $(current_leader) running after $(elapsed_s "$start") s"
    wait_for "$SWITCHOVER_TIMEOUT" new_leader_settled "$old" "$candidate" ||
        { query summary >&2 || true; die "switchover did not settle within ${SWITCHOVER_TIMEOUT} s"; }
    log "switchover $old -> $(current_leader) settled in $(elapsed_s "$start") s"
    current_leader
}

cmd_failover_kill() {
    local leader pm
    require_cluster
    require_privileges
    leader=$(current_leader) || die "the cluster has no leader"
    pm=$(postmaster_pid "$leader") || die "no running postmaster for leader $leader"
    log "kill -9 postmaster of $leader (pid $pm)"
    kill -KILL "$pm"
    echo "$leader"
}

sync_state_is() {
    local want=$1 standbys
    standbys=$(query sync-standbys) || return 1
    if [[ "$want" == on ]]; then [[ -n "$standbys" ]]; else [[ -z "$standbys" ]]; fi
}

cmd_sync() {
    local mode=${1:-} value
    require_cluster
    case "$mode" in
        on) value=true ;;
        off) value=false ;;
        *) usage ;;
    esac
    patronictl_ edit-config --force --quiet --set "synchronous_mode=$value" "$SCOPE" >&2 ||
        die "patronictl edit-config failed"
    wait_for 60 sync_state_is "$mode" || { query summary >&2 || true; die "synchronous_mode=$value not in effect after 60 s"; }
    echo "synchronous_mode $mode (sync standby: $(query sync-standbys))"
}

# Edit member NAME's `tags:` in its YAML (KEY VALUE sets, KEY alone removes). Writing in place keeps the file's
# owner and mode.
edit_tags() {
    "$PY" - "$@" <<'PYEOF'
import sys, yaml
path, key = sys.argv[1], sys.argv[2]
with open(path) as f:
    cfg = yaml.safe_load(f)
tags = cfg.get('tags') or {}
if len(sys.argv) > 3:
    tags[key] = yaml.safe_load(sys.argv[3])
else:
    tags.pop(key, None)
cfg['tags'] = tags
with open(path, 'w') as f:
    yaml.safe_dump(cfg, f, default_flow_style=False, sort_keys=False)
PYEOF
}

# Patroni re-reads its YAML on SIGHUP (what `patronictl reload` triggers through the REST API) and publishes the
# new tags to the DCS on its next loop.
apply_tags() {
    local name=$1 pid
    shift
    pid=$(patroni_pid "$name") || die "$name is not running"
    kill -HUP "$pid"
    wait_for 30 query tag "$name" "$@" || { query summary >&2 || true; die "tag change on $name not visible in /cluster after 30 s"; }
}

cmd_tag() {
    [[ $# -eq 3 ]] || usage
    local name=$1 key=$2 value=$3
    require_member "$name"
    require_cluster
    require_privileges
    edit_tags "$(member_config "$name")" "$key" "$value"
    apply_tags "$name" "$key" "$value"
    echo "$name tag $key=$value"
}

cmd_untag() {
    [[ $# -eq 2 ]] || usage
    local name=$1 key=$2
    require_member "$name"
    require_cluster
    require_privileges
    edit_tags "$(member_config "$name")" "$key"
    apply_tags "$name" "$key"
    echo "$name tag $key removed"
}

walreceiver_pid() {
    local name=$1 pm pid
    pm=$(postmaster_pid "$name") || die "no running postmaster for $name"
    for pid in $(children_of "$pm"); do
        proc_matches "$pid" walreceiver && { echo "$pid"; return 0; }
    done
    die "$name has no walreceiver (is it a streaming replica?)"
}

cmd_walreceiver() {
    local signal=$1 name=$2 pid
    require_member "$name"
    require_cluster
    require_privileges
    pid=$(walreceiver_pid "$name") || exit 1   # walreceiver_pid has said why
    kill "-$signal" "$pid"
    echo "$name walreceiver pid $pid SIG$signal"
}

cmd_etcd_stop() {
    require_cluster
    require_privileges
    etcd_pid >/dev/null || { echo "etcd is not running"; return 0; }
    stop_etcd
    echo "etcd stopped"
}

cmd_etcd_start() {
    local start
    require_cluster
    require_privileges
    start=$(now_ms)
    if etcd_pid >/dev/null; then
        log "etcd is already running"
    else
        # On an existing data dir etcd ignores the --initial-* flags and rejoins as the same member.
        spawn_etcd || die "could not start etcd"
    fi
    wait_for 30 etcd_healthy || { tail -n 40 "$CLUSTER_DIR/etcd.log" >&2; die "etcd not healthy after 30 s"; }
    echo "etcd running ($(elapsed_s "$start") s)"
}

cmd_psql() {
    local name=$1
    shift
    require_member "$name"
    if [[ $EUID -eq 0 ]]; then
        exec runuser -u "$RUN_AS" -- psql -h 127.0.0.1 -p "${PG_PORT[$name]}" -U postgres "$@"
    fi
    exec psql -h 127.0.0.1 -p "${PG_PORT[$name]}" -U postgres "$@"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd=$1
    shift
    case "$cmd" in
        up) [[ $# -eq 0 ]] || usage; cmd_up ;;
        down) [[ $# -eq 0 ]] || usage; cmd_down ;;
        status) [[ $# -eq 0 ]] || usage; cmd_status || exit 1 ;;
        leader) [[ $# -eq 0 ]] || usage; cmd_leader ;;
        port) [[ $# -eq 1 ]] || usage; require_member "$1"; echo "${PG_PORT[$1]}" ;;
        switchover) [[ $# -le 1 ]] || usage; cmd_switchover "${1:-}" ;;
        failover-kill) [[ $# -eq 0 ]] || usage; cmd_failover_kill ;;
        sync) [[ $# -eq 1 ]] || usage; cmd_sync "$1" ;;
        tag) cmd_tag "$@" ;;
        untag) cmd_untag "$@" ;;
        stop-member) [[ $# -eq 1 ]] || usage; cmd_stop_member "$1" ;;
        start-member) [[ $# -eq 1 ]] || usage; cmd_start_member "$1" ;;
        walreceiver-stop) [[ $# -eq 1 ]] || usage; cmd_walreceiver STOP "$1" ;;
        walreceiver-cont) [[ $# -eq 1 ]] || usage; cmd_walreceiver CONT "$1" ;;
        psql) [[ $# -ge 1 ]] || usage; cmd_psql "$@" ;;
        etcd-stop) [[ $# -eq 0 ]] || usage; cmd_etcd_stop ;;
        etcd-start) [[ $# -eq 0 ]] || usage; cmd_etcd_start ;;
        -h | --help | help) usage ;;
        *) log "unknown command '$cmd'"; usage ;;
    esac
}

main "$@"
