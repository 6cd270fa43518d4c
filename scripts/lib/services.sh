# shellcheck shell=bash
# Running the stack: initialising, starting and stopping the servers the tests and the demo use.
# Sourced, not run.

as_pg_user() { runuser -u "$PG_USER" -- "$@"; }

# ---------------------------------------------------------------- PostgreSQL

node_dir() { printf '%s/%s' "$PG_ROOT" "$1"; }
node_port() {
  case "$1" in
    primary) echo "$PRIMARY_PORT" ;;
    standby) echo "$STANDBY_PORT" ;;
    verify) echo "$VERIFY_PORT" ;;
  esac
}

pg_running() { as_pg_user "$PG_BIN/pg_ctl" -D "$(node_dir "$1")" status >/dev/null 2>&1; }

# Settings both nodes share; rewritten at every start so the port is always the node's own.
write_node_conf() {
  local node="$1" dir; dir="$(node_dir "$1")"
  cat >"$dir/pgops.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $(node_port "$node")
unix_socket_directories = '$PG_ROOT/sockets'
max_connections = 200
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_log_hints = on
hot_standby = on
wal_keep_size = 256MB
max_wal_size = 2GB
# Keepalives every 1.5 s on an idle primary (replies less often than half the sender timeout):
# how a failover tells a dead primary from a worker cut off from it (docs/failover-watcher.md).
wal_sender_timeout = 3s
wal_receiver_status_interval = 10s
# The WAL archive (docs/wal-archive.md): WAL summaries for incremental base backups, and a cap on
# what a dead archiver's slot may hold back, so it cannot fill the disk (a slot past it is lost).
summarize_wal = on
max_slot_wal_keep_size = 2GB
# Statement statistics for pgops doctor's slowest-statements line.
shared_preload_libraries = 'pg_stat_statements'
EOF
  # The verify server holds only scratch copies that are dropped after each test restore: nothing
  # in it needs to survive a crash or to be replicated, so it skips the work that would.
  [[ "$node" != verify ]] || printf '%s\n' 'fsync = off' 'synchronous_commit = off' 'full_page_writes = off' \
    'wal_level = minimal' 'summarize_wal = off' 'max_wal_senders = 0' 'max_replication_slots = 0' 'shared_buffers = 128MB' \
    'max_connections = 50' >>"$dir/pgops.conf"
  # Isolated test clusters (scripts/replica-cluster) shrink and tune the servers with this.
  [[ -z "${PGOPS_PG_EXTRA_CONF:-}" ]] || printf '%s\n' "$PGOPS_PG_EXTRA_CONF" >>"$dir/pgops.conf"
  chown "$PG_USER" "$dir/pgops.conf"
  grep -q "include_if_exists = 'pgops.conf'" "$dir/postgresql.conf" \
    || echo "include_if_exists = 'pgops.conf'" >>"$dir/postgresql.conf"
}

psql_primary() {
  as_pg_user "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_ROOT/sockets" -p "$PRIMARY_PORT" -U "$PG_SUPERUSER" -d postgres "$@"
}

init_primary() { init_server primary; }

# A server of its own: the primary, or the verify server that takes test restores off it.
init_server() {
  local node="$1" dir; dir="$(node_dir "$1")"
  [[ -f "$dir/PG_VERSION" ]] && return
  log "initialising $node in $dir"
  mkdir -p "$dir" "$PG_ROOT/sockets"
  chown "$PG_USER" "$PG_ROOT" "$dir" "$PG_ROOT/sockets"
  chmod 700 "$dir"
  local pwfile="$PG_ROOT/.pwfile"
  printf '%s\n' "$PG_PASSWORD" >"$pwfile"; chown "$PG_USER" "$pwfile"; chmod 600 "$pwfile"
  as_pg_user "$PG_BIN/initdb" -D "$dir" -U "$PG_SUPERUSER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --data-checksums --encoding=UTF8 --no-locale >"$PG_ROOT/initdb-$node.log" 2>&1 \
    || die "initdb failed, see $PG_ROOT/initdb-$node.log"
  rm -f "$pwfile"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  local node="$1" dir; dir="$(node_dir "$1")"
  pg_running "$node" && return
  if port_in_use "$(node_port "$node")"; then
    die "port $(node_port "$node") for the $node is taken by another server (another checkout's stack? stop it with its scripts/stack down, or set PGOPS_$(echo "$node" | tr a-z A-Z)_PORT)"
  fi
  write_node_conf "$node"
  log "starting $node on 127.0.0.1:$(node_port "$node")"
  as_pg_user "$PG_BIN/pg_ctl" -D "$dir" -l "$PG_ROOT/$node.log" -w -t 120 start >/dev/null \
    || die "$node did not start, see $PG_ROOT/$node.log"
}

stop_postgres() {
  local node="$1"
  pg_running "$node" || return 0
  log "stopping $node"
  as_pg_user "$PG_BIN/pg_ctl" -D "$(node_dir "$node")" -m fast -w -t 60 stop >/dev/null
}

prepare_primary_roles() {
  psql_primary <<EOF
SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN PASSWORD %L', '$PG_REPLICATION_USER', '$PG_REPLICATION_PASSWORD')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_REPLICATION_USER') \gexec
SELECT format('CREATE DATABASE %I', '$PG_DATABASE')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE') \gexec
\connect $PG_DATABASE
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
EOF
}

init_standby() {
  local dir; dir="$(node_dir standby)"
  [[ -f "$dir/PG_VERSION" ]] && return
  log "cloning standby from the primary with pg_basebackup -R"
  # A slot left behind by an earlier standby would hold WAL forever and block -C.
  psql_primary -c "SELECT pg_drop_replication_slot('$STANDBY_SLOT') FROM pg_replication_slots WHERE slot_name = '$STANDBY_SLOT'" >/dev/null
  rm -rf "$dir"
  as_pg_user env PGPASSWORD="$PG_REPLICATION_PASSWORD" "$PG_BIN/pg_basebackup" \
    -h 127.0.0.1 -p "$PRIMARY_PORT" -U "$PG_REPLICATION_USER" -D "$dir" \
    -R -X stream -C -S "$STANDBY_SLOT" --checkpoint=fast >"$PG_ROOT/basebackup.log" 2>&1 \
    || die "pg_basebackup failed, see $PG_ROOT/basebackup.log"
}

standby_streaming() {
  [[ "$(psql_primary -At -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ]]
}

# ---------------------------------------------------------------- PgBouncer

pgbouncer_running() {
  local pid; pid="$(cat "$PGBOUNCER_DIR/pgbouncer.pid" 2>/dev/null)" && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# The app-facing endpoint, routing every database to the primary. pgops' default repoint hook
# rewrites the host and port of each [databases] line and sends RELOAD: keep that format.
write_pgbouncer_conf() {
  mkdir -p "$PGBOUNCER_DIR"
  cat >"$PGBOUNCER_DIR/pgbouncer.ini" <<EOF
[databases]
$PG_DATABASE = host=127.0.0.1 port=$PRIMARY_PORT dbname=$PG_DATABASE
postgres = host=127.0.0.1 port=$PRIMARY_PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGBOUNCER_DIR/userlist.txt
admin_users = $PG_SUPERUSER
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
ignore_startup_parameters = extra_float_digits,options
; after a repoint, logins must not wait out the default 15 s back-off the dead primary caused
server_login_retry = 1
server_connect_timeout = 3
pidfile = $PGBOUNCER_DIR/pgbouncer.pid
logfile = $PGBOUNCER_DIR/pgbouncer.log
EOF
  printf '"%s" "%s"\n' "$PG_SUPERUSER" "$PG_PASSWORD" >"$PGBOUNCER_DIR/userlist.txt"
  chmod 600 "$PGBOUNCER_DIR/userlist.txt"
  chown -R "$PG_USER" "$PGBOUNCER_DIR"
}

start_pgbouncer() {
  pgbouncer_running && return
  install_pgbouncer
  if port_in_use "$PGBOUNCER_PORT"; then die "port $PGBOUNCER_PORT for PgBouncer is taken (set PGOPS_PGBOUNCER_PORT)"; fi
  # Written once: after a failover the repoint step owns the target, and a restart must keep it.
  [[ -f "$PGBOUNCER_DIR/pgbouncer.ini" ]] || write_pgbouncer_conf
  log "starting PgBouncer on 127.0.0.1:$PGBOUNCER_PORT"
  as_pg_user "$PGBOUNCER_BIN" -d "$PGBOUNCER_DIR/pgbouncer.ini" >/dev/null 2>&1 \
    || die "PgBouncer did not start, see $PGBOUNCER_DIR/pgbouncer.log"
  wait_for "PgBouncer (see $PGBOUNCER_DIR/pgbouncer.log)" 20 port_in_use "$PGBOUNCER_PORT"
}

stop_pgbouncer() {
  pgbouncer_running || return 0
  log "stopping PgBouncer"
  local pid; pid="$(cat "$PGBOUNCER_DIR/pgbouncer.pid")"
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------- Temporal

temporal_ready() {
  "$TEMPORAL_BIN" operator namespace describe --address "127.0.0.1:$TEMPORAL_PORT" --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1
}

start_temporal() {
  temporal_ready && return
  mkdir -p "$STACK_DIR/temporal"
  log "starting Temporal dev server on 127.0.0.1:$TEMPORAL_PORT (UI http://127.0.0.1:$TEMPORAL_UI_PORT)"
  # Eager activity execution: an activity a workflow schedules may start on the worker that
  # scheduled it, without a round through matching (one write less per embedding batch).
  setsid "$TEMPORAL_BIN" server start-dev \
    --db-filename "$STACK_DIR/temporal/temporal.db" \
    --namespace "$TEMPORAL_NAMESPACE" \
    --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --search-attribute PgopsTarget=Keyword --search-attribute PgopsBackupId=Keyword \
    --dynamic-config-value system.enableActivityEagerExecution=true \
    --log-level warn \
    </dev/null >"$STACK_DIR/temporal/server.log" 2>&1 &
  echo $! >"$STACK_DIR/temporal/pid"
  wait_for "Temporal (see $STACK_DIR/temporal/server.log)" 90 temporal_ready
}

# ---------------------------------------------------------------- MinIO

minio_ready() { curl -sf "http://127.0.0.1:$MINIO_PORT/minio/health/ready"; }

start_minio() {
  install_minio
  if ! minio_ready >/dev/null 2>&1; then
    mkdir -p "$STACK_DIR/minio/data"
    log "starting MinIO on 127.0.0.1:$MINIO_PORT"
    MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" MINIO_BROWSER=off \
      setsid "$MINIO_BIN" server --quiet --address "127.0.0.1:$MINIO_PORT" \
      --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" "$STACK_DIR/minio/data" \
      </dev/null >"$STACK_DIR/minio/server.log" 2>&1 &
    echo $! >"$STACK_DIR/minio/pid"
    wait_for "MinIO (see $STACK_DIR/minio/server.log)" 60 minio_ready
  fi
  ensure_bucket
}

s3_request() {
  curl -sf --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$MINIO_USER:$MINIO_PASSWORD" "$@"
}

ensure_bucket() {
  s3_request -I "http://127.0.0.1:$MINIO_PORT/$S3_BUCKET" >/dev/null 2>&1 && return
  log "creating bucket $S3_BUCKET"
  s3_request -X PUT "http://127.0.0.1:$MINIO_PORT/$S3_BUCKET" >/dev/null || die "could not create bucket $S3_BUCKET"
}

stop_minio() { stop_pidfile "$STACK_DIR/minio/pid" MinIO; }

# stop_pidfile FILE NAME: TERM the process, then KILL it if it lingers.
stop_pidfile() {
  local pidfile="$1" name="$2" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- commands

stack_env() {
  cat <<EOF
PGOPS_TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
PGOPS_TEMPORAL_NAMESPACE=$TEMPORAL_NAMESPACE
PGOPS_PG_BIN_DIR=$PG_BIN
PGOPS_TARGETS=primary,standby,verify
PGOPS_TARGET_PRIMARY_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$PRIMARY_PORT/$PG_DATABASE
PGOPS_TARGET_STANDBY_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$STANDBY_PORT/$PG_DATABASE
PGOPS_TARGET_VERIFY_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$VERIFY_PORT/postgres
PGOPS_TARGET_VERIFY_DATA_DIR=$(node_dir verify)
PGOPS_TARGET_VERIFY_OS_USER=$PG_USER
PGOPS_TARGET_VERIFY_LOG_FILE=$PG_ROOT/verify.log
PGOPS_VERIFY_TARGET=verify
PGOPS_TARGET_PRIMARY_DATA_DIR=$(node_dir primary)
PGOPS_TARGET_PRIMARY_OS_USER=$PG_USER
PGOPS_TARGET_PRIMARY_LOG_FILE=$PG_ROOT/primary.log
PGOPS_TARGET_STANDBY_DATA_DIR=$(node_dir standby)
PGOPS_TARGET_STANDBY_OS_USER=$PG_USER
PGOPS_TARGET_STANDBY_LOG_FILE=$PG_ROOT/standby.log
PGOPS_CLUSTERS=main
PGOPS_CLUSTER_MAIN_PRIMARY=primary
PGOPS_CLUSTER_MAIN_STANDBYS=standby
PGOPS_CLUSTER_MAIN_ENDPOINT_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$PGBOUNCER_PORT/$PG_DATABASE
PGOPS_CLUSTER_MAIN_PGBOUNCER_INI=$PGBOUNCER_DIR/pgbouncer.ini
PGOPS_CLUSTER_MAIN_REPLICATION_USER=$PG_REPLICATION_USER
PGOPS_CLUSTER_MAIN_REPLICATION_PASSWORD=$PG_REPLICATION_PASSWORD
PGOPS_S3_ENDPOINT=http://127.0.0.1:$MINIO_PORT
PGOPS_S3_REGION=$S3_REGION
PGOPS_S3_BUCKET=$S3_BUCKET
PGOPS_S3_ACCESS_KEY_ID=$MINIO_USER
PGOPS_S3_SECRET_ACCESS_KEY=$MINIO_PASSWORD
PGOPS_STAGING_DIR=$STACK_DIR/staging
PGOPS_WAL_SPOOL_DIR=$STACK_DIR/wal-spool
PGOPS_ENCRYPTION_KEYS_FILE=$STACK_DIR/encryption.keys
EOF
}

# A development master key, made once per stack and kept with it: the demo and the tests back up
# encrypted and authenticated, as production should (docs/encryption.md). Node makes the random
# bytes, so no other tool is needed; the file is readable by this user alone, as pgops requires.
ensure_dev_encryption_key() {
  local file="$STACK_DIR/encryption.keys"
  [[ -s "$file" ]] && return 0
  (umask 077 && node -e 'process.stdout.write(`# pgops development key ring: one "<key id> <base64 of 32 bytes>" a line\ndev-${new Date().toISOString().slice(0, 10)} ${require("crypto").randomBytes(32).toString("base64")}\n`)' >"$file")
  log "made a development encryption key in $file"
}

stack_up() {
  local started=$SECONDS
  stack_install
  mkdir -p "$STACK_DIR"
  init_primary
  start_postgres primary
  prepare_primary_roles
  init_standby
  start_postgres standby
  wait_for "streaming replication to the standby" 60 standby_streaming
  start_pgbouncer
  init_server verify
  start_postgres verify
  start_temporal
  start_minio
  ensure_dev_encryption_key
  stack_env >"$STACK_DIR/stack.env"
  start_failover_watcher
  start_wal_archiver
  log "ready in $((SECONDS - started))s"
  stack_status
}

# The cluster's failover watcher (one per cluster: a running one is kept). It waits in Temporal
# until a worker polls the "pgops" task queue (npm run demo, bin/pgops worker); `pgops failover
# watch --stop` ends it.
start_failover_watcher() {
  "$TEMPORAL_BIN" workflow start --address "127.0.0.1:$TEMPORAL_PORT" --namespace "$TEMPORAL_NAMESPACE" \
    --task-queue pgops --type failoverWatcher --workflow-id failover-watch-main \
    --input '{"cluster":"main"}' --id-conflict-policy UseExisting >/dev/null \
    || die "could not start the failover watcher of cluster main"
}

# The cluster's WAL archiver (one per cluster: a running one is kept), started like the watcher:
# it waits in Temporal until a worker polls "pgops"; `pgops wal stop` ends it. docs/wal-archive.md.
start_wal_archiver() {
  "$TEMPORAL_BIN" workflow start --address "127.0.0.1:$TEMPORAL_PORT" --namespace "$TEMPORAL_NAMESPACE" \
    --task-queue pgops --type walArchiver --workflow-id wal-archive-main \
    --input '{"cluster":"main"}' --id-conflict-policy UseExisting >/dev/null \
    || die "could not start the WAL archiver of cluster main"
}

stack_down() {
  stop_pidfile "$STACK_DIR/temporal/pid" Temporal
  stop_minio
  stop_pgbouncer
  if [[ -x "$PG_BIN/pg_ctl" ]]; then
    stop_postgres verify
    stop_postgres standby
    stop_postgres primary
  fi
}

stack_reset() {
  log "deleting $STACK_DIR and $PG_ROOT"
  rm -rf "$STACK_DIR" "$PG_ROOT"
}

up_or_down() { if "$@" >/dev/null 2>&1; then echo up; else echo down; fi; }

stack_status() {
  printf '%-10s %-5s %s\n' service state where
  printf '%-10s %-5s %s\n' temporal "$(up_or_down temporal_ready)" "127.0.0.1:$TEMPORAL_PORT namespace=$TEMPORAL_NAMESPACE ui=http://127.0.0.1:$TEMPORAL_UI_PORT"
  printf '%-10s %-5s %s\n' primary "$(up_or_down pg_running primary)" "127.0.0.1:$PRIMARY_PORT db=$PG_DATABASE data=$(node_dir primary)"
  printf '%-10s %-5s %s\n' standby "$(up_or_down pg_running standby)" "127.0.0.1:$STANDBY_PORT slot=$STANDBY_SLOT data=$(node_dir standby)"
  printf '%-10s %-5s %s\n' verify "$(up_or_down pg_running verify)" "127.0.0.1:$VERIFY_PORT (test restores) data=$(node_dir verify)"
  printf '%-10s %-5s %s\n' pgbouncer "$(up_or_down pgbouncer_running)" "127.0.0.1:$PGBOUNCER_PORT (app endpoint) -> $(grep -m1 -o 'port=[0-9]*' "$PGBOUNCER_DIR/pgbouncer.ini" 2>/dev/null || echo '?')"
  printf '%-10s %-5s %s\n' minio "$(up_or_down minio_ready)" "http://127.0.0.1:$MINIO_PORT bucket=$S3_BUCKET"
  printf 'environment: %s\n' "$STACK_DIR/stack.env"
}
