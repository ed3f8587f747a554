#!/usr/bin/env bash
# Make a Docker engine answer and build the lab's Debian 12 systemd base image.
#
#   scripts/lab-engine.sh engine   make sure a Docker engine answers
#   scripts/lab-engine.sh image    build the base image if its recipe changed
#   scripts/lab-engine.sh all      both (default)
#   scripts/lab-engine.sh tag      print the image reference for the current recipe
#
# An engine that already answers (Docker Desktop, a system dockerd) is used as is.
# Otherwise Debian's docker.io is installed and dockerd is started in the
# background (this machine has no systemd as PID 1). Idempotent.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
recipe_dir="$here/image"
cache_dir=${HOKUSAI_CACHE_DIR:-/var/cache/hokusai}
image_repo=${HOKUSAI_IMAGE_REPO:-hokusai/debian12-systemd}
dockerd_log=${HOKUSAI_DOCKERD_LOG:-/var/log/hokusai-dockerd.log}
mirror=${HOKUSAI_DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'lab-engine: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else die "this step needs root (or sudo): $*"; fi
}

engine_answers() { docker info >/dev/null 2>&1; }

check_disk() {
  local need_mb=$1 dir=$2 avail
  mkdir -p "$dir" 2>/dev/null || as_root mkdir -p "$dir"
  avail=$(df -Pm "$dir" | awk 'NR==2 {print $4}')
  [ "${avail:-0}" -ge "$need_mb" ] ||
    die "only ${avail} MiB free under $dir, the lab needs at least ${need_mb} MiB; free some disk space"
}

ensure_engine() {
  if engine_answers; then say "Docker engine answers: $(docker version -f '{{.Server.Version}}')"; return; fi
  command -v docker >/dev/null 2>&1 || need_install=1
  if ! command -v dockerd >/dev/null 2>&1 || [ -n "${need_install:-}" ]; then
    command -v apt-get >/dev/null 2>&1 ||
      die "no Docker engine answers and apt-get is missing: install and start Docker yourself, then re-run"
    check_disk 2048 /var/lib
    say "installing Debian's docker.io (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      die "apt-get update failed: check the network path to the Debian mirror"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null ||
      die "apt-get install docker.io failed (see the output above)"
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    say "starting docker.service with systemd"
    as_root systemctl start docker.service || true
  fi
  if ! engine_answers; then
    if pgrep -x dockerd >/dev/null 2>&1; then
      say "dockerd is running but does not answer yet; waiting"
    else
      check_disk 2048 /var/lib
      say "starting dockerd in the background (log: $dockerd_log)"
      as_root bash -c "nohup dockerd >>'$dockerd_log' 2>&1 </dev/null &"
    fi
    for _ in $(seq 1 60); do engine_answers && break; sleep 1; done
  fi
  engine_answers || die "dockerd did not answer within 60 s; read $dockerd_log"
  say "Docker engine answers: $(docker version -f '{{.Server.Version}}')"
}

recipe_hash() {
  cat "$recipe_dir/packages.txt" "$recipe_dir/Dockerfile" "$0" | sha256sum | cut -c1-12
}

image_tag() { printf '%s:%s\n' "$image_repo" "$(recipe_hash)"; }

ensure_image() {
  local tag rootfs_tar rootfs_ref tmp pkgs
  tag=$(image_tag)
  if docker image inspect "$tag" >/dev/null 2>&1; then
    say "base image $tag is current"
  else
    command -v debootstrap >/dev/null 2>&1 || {
      say "installing debootstrap (apt-get)"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
        die "apt-get install debootstrap failed"
    }
    check_disk 1024 "$cache_dir"
    rootfs_tar="$cache_dir/rootfs-$(recipe_hash).tar"
    if [ ! -s "$rootfs_tar" ]; then
      pkgs=$(grep -v '^#' "$recipe_dir/packages.txt" | xargs | tr ' ' ',')
      tmp=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
      trap 'as_root rm -rf "$tmp"' EXIT
      say "debootstrap bookworm into $tmp (about a minute; progress below)"
      as_root debootstrap --variant=minbase --include="$pkgs" bookworm "$tmp" "$mirror" |
        awk '/^I: (Retrieving|Validating|Unpacking|Configuring) / {n++; if (n % 25 == 0) {printf "    ... %s\n", $0; fflush()}} /^[EW]:/ {print}' >&2 ||
        die "debootstrap failed (network to $mirror?)"
      as_root rm -rf "$tmp/var/cache/apt/archives/"*.deb
      as_root tar -C "$tmp" -cf "$rootfs_tar.part" .
      as_root mv "$rootfs_tar.part" "$rootfs_tar"
      as_root rm -rf "$tmp"; trap - EXIT
    fi
    rootfs_ref="$image_repo-rootfs:$(recipe_hash)"
    say "importing root filesystem as $rootfs_ref"
    docker import "$rootfs_tar" "$rootfs_ref" >/dev/null
    say "building $tag"
    docker build -q --build-arg "ROOTFS=$rootfs_ref" -t "$tag" "$recipe_dir" >/dev/null
  fi
  docker tag "$tag" "$image_repo:latest"
  say "base image: $tag (also tagged $image_repo:latest)"
}

main() {
  case "${1:-all}" in
    engine) ensure_engine ;;
    image) ensure_image ;;
    all) ensure_engine; ensure_image ;;
    tag) image_tag ;;
    *) die "unknown command '${1}'; use engine, image, all or tag" ;;
  esac
}

main "$@"
