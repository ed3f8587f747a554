#!/usr/bin/env bash
# Build the MinIO server and the mc client from source through the Go module
# proxy, at pinned versions, into a cache outside the clone:
#
#   $HOKUSAI_CACHE_DIR/minio/<minio version>/minio   (+ SHA256SUMS)
#   $HOKUSAI_CACHE_DIR/mc/<mc version>/mc            (+ SHA256SUMS)
#
#   tests/lab/build-minio.sh          build what is missing (idempotent)
#   tests/lab/build-minio.sh paths    print the two binary paths, build nothing
#
# MinIO's community edition is source-only (the repository is archived). The
# module proxy reachable here serves exactly one minio version, the one pinned
# below; see roles/minio/README.md ("Where the binary comes from").
# A warm machine rebuilds nothing: a binary is reused when `go version -m`
# shows it was built from the pinned module version and it matches the
# SHA256SUMS recorded next to it. Builds are static (CGO_ENABLED=0) and
# -trimpath, so the same Go toolchain gives the same bytes.
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MC_MODULE=github.com/minio/mc
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9

cache_dir=${HOKUSAI_CACHE_DIR:-/var/cache/hokusai}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-minio: error: %s\n' "$*" >&2; exit 1; }

find_go() {
  local go
  go=${GO:-$(command -v go || true)}
  [ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
  [ -n "$go" ] && [ -x "$go" ] ||
    die "no Go toolchain found (looked for \$GO, 'go' on PATH and /usr/local/go/bin/go). Install Go >= 1.24 (https://go.dev/dl/) and re-run."
  printf '%s\n' "$go"
}

# built_from BINARY MODULE VERSION: true when BINARY's embedded build info says
# it is MODULE at VERSION.
built_from() {
  [ -x "$1" ] || return 1
  "$GO_BIN" version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" '$1 == "mod" && $2 == m && $3 == v {ok = 1} END {exit !ok}'
}

# build NAME MODULE VERSION: make $cache_dir/NAME/VERSION/NAME.
build() {
  local name=$1 module=$2 version=$3 dest tmp t0
  dest="$cache_dir/$name/$version"
  if built_from "$dest/$name" "$module" "$version" && [ -s "$dest/SHA256SUMS" ] &&
    (cd "$dest" && sha256sum --quiet -c SHA256SUMS); then
    say "$name $version is cached: $dest/$name"
    return
  fi
  mkdir -p "$dest" || die "cannot create $dest (run as root or set HOKUSAI_CACHE_DIR)"
  tmp=$(mktemp -d "$dest/gobin.XXXXXX")
  say "$name $version: go install $module@$version (minio takes ~4-8 min on 2 shared cores, mc ~1 min)"
  t0=$(date +%s)
  # -trimpath: no build paths of this machine in the binary. Output is
  # streamed so CI shows progress (one line per downloaded module).
  if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 \
    "$GO_BIN" install -trimpath "$module@$version" 2>&1 | sed -u 's/^/    /' >&2 ||
    [ ! -x "$tmp/$name" ]; then
    rm -rf "$tmp"
    die "go install $module@$version failed (output above). A '403 Forbidden' from the module proxy means it does not serve this version; check GOPROXY=$("$GO_BIN" env GOPROXY)."
  fi
  mv "$tmp/$name" "$dest/$name.part"
  rm -rf "$tmp"
  say "$name built in $(($(date +%s) - t0)) s"
  built_from "$dest/$name.part" "$module" "$version" ||
    die "$dest/$name.part does not report $module $version in its build info"
  chmod 0755 "$dest/$name.part"
  mv "$dest/$name.part" "$dest/$name"
  (cd "$dest" && sha256sum "$name" > SHA256SUMS)
  say "$name: $(cat "$dest/SHA256SUMS")"
}

main() {
  case "${1:-build}" in
    paths)
      printf '%s\n' "$cache_dir/minio/$MINIO_VERSION/minio" "$cache_dir/mc/$MC_VERSION/mc"
      return ;;
    build) ;;
    *) die "unknown command '$1'; use build (default) or paths" ;;
  esac
  GO_BIN=$(find_go)
  say "Go toolchain: $("$GO_BIN" version)"
  build minio "$MINIO_MODULE" "$MINIO_VERSION"
  build mc "$MC_MODULE" "$MC_VERSION"
  say "binaries: $cache_dir/minio/$MINIO_VERSION/minio $cache_dir/mc/$MC_VERSION/mc"
}

main "$@"
