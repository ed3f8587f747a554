#!/usr/bin/env bash
# Build the MinIO server and the mc client from source through the Go module
# proxy, at pinned versions, into a cache outside the clone:
#
#   $HOKUSAI_CACHE_DIR/minio/<minio version>+hokusai.<patch hash>/minio   (+ SHA256SUMS, BUILDINFO)
#   $HOKUSAI_CACHE_DIR/mc/<mc version>/mc                                 (+ SHA256SUMS)
#
#   tests/lab/build-minio.sh          build what is missing (idempotent)
#   tests/lab/build-minio.sh paths    print the two binary paths, build nothing
#
# The versions are pinned in versions.env (top of the clone). MinIO's
# community edition is source-only (the repository is archived). The
# module proxy reachable here serves exactly one minio version, the one pinned
# there; see roles/minio/README.md ("Where the binary comes from").
# MinIO is built with our patches (tests/lab/minio-patches/*.patch, applied in
# name order with `patch -p1`): the module source from `go mod download` is
# copied, patched and built with `go build`. <patch hash> is the first 12 hex
# digits of the sha256 of the patches concatenated in that order, so a changed
# patch builds into a new directory; with no patch the directory is just
# <minio version>. mc is built as is with `go install`.
# A warm machine rebuilds nothing: mc is reused when `go version -m` shows it
# was built from the pinned module version, minio when its BUILDINFO stamp
# names the pinned version and the patch hash (a build from a patched tree
# reports "(devel)"); either only when it matches the SHA256SUMS recorded next
# to it. Builds are static (CGO_ENABLED=0) and -trimpath, so the same Go
# toolchain gives the same bytes.
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-minio: error: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
patch_dir=$here/minio-patches
cache_dir=${HOKUSAI_CACHE_DIR:-/var/cache/hokusai}

# The pins: versions.env at the top of the clone (KEY=VALUE, # comments).
versions_file=$here/../../versions.env
pin() {
  local value
  value=$(sed -n "s/^$1=//p" "$versions_file")
  [ -n "$value" ] || die "$1 is not set in $versions_file"
  printf '%s\n' "$value"
}
[ -f "$versions_file" ] || die "no $versions_file (the pinned versions)"
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=$(pin MINIO_VERSION)
MINIO_PATCH_HASH=$(pin MINIO_PATCH_HASH)
MC_MODULE=github.com/minio/mc
MC_VERSION=$(pin MC_VERSION)

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

# minio_patches: the patch files, in the order they are applied.
minio_patches() {
  local f
  for f in "$patch_dir"/*.patch; do
    [ -f "$f" ] && printf '%s\n' "$f"
  done
  return 0
}

# minio_build_id: the cache directory name of the patched minio build.
minio_build_id() {
  local patches hash f
  patches=$(minio_patches)
  if [ -z "$patches" ]; then
    [ "$MINIO_PATCH_HASH" = none ] ||
      die "no patch in $patch_dir, versions.env says MINIO_PATCH_HASH=$MINIO_PATCH_HASH: set it to none for an unpatched build"
    printf '%s\n' "$MINIO_VERSION"
    return
  fi
  hash=$(while IFS= read -r f; do cat "$f"; done <<< "$patches" | sha256sum | cut -c1-12)
  [ "$hash" = "$MINIO_PATCH_HASH" ] ||
    die "the patches in $patch_dir hash to $hash, versions.env says MINIO_PATCH_HASH=$MINIO_PATCH_HASH: set it to $hash (the inventories and scenarios name the build by it)"
  printf '%s+hokusai.%s\n' "$MINIO_VERSION" "$hash"
}

# minio_stamp: what BUILDINFO holds for the current pin and patches.
minio_stamp() {
  local f
  printf 'module %s\nversion %s\nbuild %s\n' "$MINIO_MODULE" "$MINIO_VERSION" "$(minio_build_id)"
  while IFS= read -r f; do
    [ -n "$f" ] && printf 'patch %s %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$(basename "$f")"
  done <<< "$(minio_patches)"
}

# build_minio: make $cache_dir/minio/<build id>/minio from the pinned module
# source plus our patches.
build_minio() {
  local id dest tmp t0 dir p
  id=$(minio_build_id)
  dest="$cache_dir/minio/$id"
  if [ -x "$dest/minio" ] && [ -s "$dest/SHA256SUMS" ] && [ -s "$dest/BUILDINFO" ] &&
    [ "$(cat "$dest/BUILDINFO")" = "$(minio_stamp)" ] &&
    (cd "$dest" && sha256sum --quiet -c SHA256SUMS); then
    say "minio $id is cached: $dest/minio"
    return
  fi
  if ! command -v patch > /dev/null; then
    # Debian's `patch` is priority optional: a minimal machine may lack it.
    command -v apt-get > /dev/null && [ "$(id -u)" = 0 ] ||
      die "'patch' is not installed (apt-get install patch); it applies tests/lab/minio-patches/*.patch"
    say "installing Debian's patch (apt-get): it applies tests/lab/minio-patches/*.patch"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patch > /dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patch > /dev/null; } ||
      die "apt-get install patch failed (see the output above)"
  fi
  mkdir -p "$dest" || die "cannot create $dest (run as root or set HOKUSAI_CACHE_DIR)"
  tmp=$(mktemp -d "$dest/gobuild.XXXXXX")
  say "minio $id: go mod download $MINIO_MODULE@$MINIO_VERSION"
  # The JSON names the module's directory in the module cache (Dir), or says
  # why it could not be downloaded (Error).
  "$GO_BIN" mod download -json "$MINIO_MODULE@$MINIO_VERSION" > "$tmp/download.json" 2>&1 || true
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$tmp/download.json")
  if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
    sed 's/^/    /' "$tmp/download.json" >&2
    rm -rf "$tmp"
    die "go mod download $MINIO_MODULE@$MINIO_VERSION failed (output above). A '403 Forbidden' from the module proxy means it does not serve this version; check GOPROXY=$("$GO_BIN" env GOPROXY)."
  fi
  cp -R "$dir" "$tmp/src" && chmod -R u+w "$tmp/src" || { rm -rf "$tmp"; die "cannot copy $dir to $tmp/src"; }
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    say "minio: applying $(basename "$p")"
    if ! (cd "$tmp/src" && patch -p1 --forward --batch --no-backup-if-mismatch < "$p") 2>&1 | sed -u 's/^/    /' >&2; then
      rm -rf "$tmp"
      die "$p does not apply to $MINIO_MODULE@$MINIO_VERSION (output above): refresh the patch for the pinned version, or drop it (see roles/minio/README.md, \"Where the binary comes from\")."
    fi
  done <<< "$(minio_patches)"
  say "minio $id: go build -trimpath (takes ~4-8 min on 2 shared cores)"
  t0=$(date +%s)
  # -trimpath: no build paths of this machine in the binary. Output is
  # streamed so CI shows progress (one line per downloaded module).
  if ! (cd "$tmp/src" && GOFLAGS="${GOFLAGS:--buildvcs=false}" GOWORK=off CGO_ENABLED=0 \
    "$GO_BIN" build -trimpath -o "$tmp/minio" .) 2>&1 | sed -u 's/^/    /' >&2 ||
    [ ! -x "$tmp/minio" ]; then
    rm -rf "$tmp"
    die "go build of the patched $MINIO_MODULE@$MINIO_VERSION failed (output above)."
  fi
  say "minio built in $(($(date +%s) - t0)) s"
  "$GO_BIN" version -m "$tmp/minio" 2>/dev/null | awk -v m="$MINIO_MODULE" '$1 == "path" && $2 == m {ok = 1} END {exit !ok}' ||
    { rm -rf "$tmp"; die "the built binary does not report $MINIO_MODULE as its main package (go version -m)"; }
  chmod 0755 "$tmp/minio"
  mv "$tmp/minio" "$dest/minio"
  rm -rf "$tmp"
  (cd "$dest" && sha256sum minio > SHA256SUMS)
  minio_stamp > "$dest/BUILDINFO"
  say "minio: $(cat "$dest/SHA256SUMS")"
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
  local id
  # Checked here first: a pin that does not match the patches stops the script.
  id=$(minio_build_id)
  case "${1:-build}" in
    paths)
      printf '%s\n' "$cache_dir/minio/$id/minio" "$cache_dir/mc/$MC_VERSION/mc"
      return ;;
    build) ;;
    *) die "unknown command '$1'; use build (default) or paths" ;;
  esac
  GO_BIN=$(find_go)
  say "Go toolchain: $("$GO_BIN" version)"
  build_minio
  build mc "$MC_MODULE" "$MC_VERSION"
  say "binaries: $cache_dir/minio/$id/minio $cache_dir/mc/$MC_VERSION/mc"
}

main "$@"
