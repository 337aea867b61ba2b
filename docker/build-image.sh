#!/usr/bin/env bash
# Build the Clawdspace sandbox image.
#
#   docker/build-image.sh [TAG]          # TAG defaults to clawdspace:latest
#   docker/build-image.sh --recipe       # print the recipe hash
#   docker/build-image.sh --current [TAG]  # exit 0 when TAG exists and was
#                                        # built from the current recipe
#
# The recipe is this folder's Dockerfile and the files its COPY and ADD lines
# name; its sha256 goes on the image as the label org.clawdspace.recipe, so
# `make image` rebuilds an image made from an older recipe.
#
# Base image, first that works:
#   1. $CLAWDSPACE_BASE, when set (used as is, no pull).
#   2. debian:bookworm-slim pulled from a registry (`timeout 60 docker pull`),
#      skipped when CLAWDSPACE_OFFLINE=1.
#   3. debian:bookworm-slim already present locally.
#   4. clawdspace-base:bookworm, a local Debian base built with debootstrap from
#      the machine's apt mirror and `docker import`ed (built once, reused after;
#      needs root). Mirror: $CLAWDSPACE_DEBIAN_MIRROR, else the machine's apt
#      sources (one-line or deb822 format), else http://deb.debian.org/debian.
#      Security mirror: $CLAWDSPACE_DEBIAN_SECURITY_MIRROR ("none" to leave it
#      out), else the machine's, if it has one.
#
# Safe to run again: the base is reused and the image build uses Docker's cache.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=build-image

SUITE=bookworm
REGISTRY_BASE=debian:bookworm-slim
OFFLINE_BASE=clawdspace-base:$SUITE
DEFAULT_MIRROR=http://deb.debian.org/debian
DEFAULT_SECURITY_MIRROR=http://deb.debian.org/debian-security
APT_DIR=/etc/apt
ROOTFS_PARENT=${CLAWDSPACE_ROOTFS_TMP:-/var/tmp}
PULL_TIMEOUT=60

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
fail() {
  printf '[%s] ERROR: %s\n' "$PROG" "$1" >&2
  shift
  local line
  for line in "$@"; do printf '[%s]   %s\n' "$PROG" "$line" >&2; done
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

RECIPE_LABEL=org.clawdspace.recipe

# recipe_files prints the build context's files the image is made from,
# relative to SCRIPT_DIR: the Dockerfile, then every source of its COPY and
# ADD lines (shell form, without --from), folders expanded to their files.
recipe_files() {
  local src
  printf '%s\n' Dockerfile
  awk '
    toupper($1) == "COPY" || toupper($1) == "ADD" {
      if ($2 ~ /^\[/) { print "JSON-form " $1 " is not supported: " $0 > "/dev/stderr"; exit 1 }
      n = 0; from = 0
      for (i = 2; i <= NF; i++) {
        if ($i ~ /^--from=/) from = 1
        else if ($i !~ /^--/) a[++n] = $i
      }
      if (!from) for (i = 1; i < n; i++) print a[i]
    }' "$SCRIPT_DIR/Dockerfile" |
    while read -r src; do
      # Globs in a source are the build's to expand; so they are ours.
      # shellcheck disable=SC2086
      (cd "$SCRIPT_DIR" && find $src -type f) || return 1
    done | LC_ALL=C sort -u
}

# recipe_hash prints the sha256 of the recipe's file names and contents.
recipe_hash() {
  local files
  files=$(recipe_files) || fail "cannot list the files of the recipe (see above)."
  (cd "$SCRIPT_DIR" && printf '%s\n' "$files" | while read -r f; do sha256sum -- "$f"; done) |
    sha256sum | cut -d' ' -f1
}

case "${1:-}" in
  -h | --help)
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  --recipe)
    recipe_hash
    exit 0
    ;;
  --current)
    tag=${2:-clawdspace:latest}
    want=$(recipe_hash)
    have=$(docker image inspect --format "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$tag" 2>/dev/null) ||
      { log "$tag is missing"; exit 1; }
    [ "$have" = "$want" ] || { log "$tag was built from another recipe (${have:-no $RECIPE_LABEL label}; docker/ is at $want)"; exit 1; }
    exit 0
    ;;
esac
[ $# -le 1 ] || fail "too many arguments." "Usage: $0 [TAG]"
TAG=${1:-clawdspace:latest}

T0=$SECONDS
elapsed() { printf '%ss' $((SECONDS - ${1:-$T0})); }

# --------------------------------------------------------------- engine
if ! { have docker && timeout 20 docker info >/dev/null 2>&1; }; then
  log "no Docker engine answers; running ensure-engine.sh"
  "$SCRIPT_DIR/ensure-engine.sh" || fail "a Docker engine is needed to build the image (see above)."
fi

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# ------------------------------------------------------- apt mirror lookup
# Prints "URI SUITE COMPONENT..." for each enabled `deb` entry of the machine's
# apt sources, in order: /etc/apt/sources.list, then sources.list.d/*.list and
# *.sources (deb822).
apt_source_entries() {
  local f
  for f in "$APT_DIR"/sources.list "$APT_DIR"/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    # deb [options] URI SUITE COMPONENT...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//g' "$f" |
      awk '$1 == "deb" && NF >= 3 { line = $2; for (i = 3; i <= NF; i++) line = line " " $i; print line }'
  done
  for f in "$APT_DIR"/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '
      function flush(   nu, ns, u, s, i, j) {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^(no|false|0)$/) {
          nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (u[i] != "" && s[j] != "") print u[i], s[j], comps
        }
        types = uris = suites = comps = cur = ""; enabled = "yes"
      }
      BEGIN { enabled = "yes" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ {  # continuation line of a multi-line field
        v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v)
        if (cur == "types") types = types " " v
        else if (cur == "uris") uris = uris " " v
        else if (cur == "suites") suites = suites " " v
        else if (cur == "components") comps = comps " " v
        next
      }
      /^[A-Za-z0-9-]+:/ {
        k = tolower(substr($0, 1, index($0, ":") - 1)); v = substr($0, index($0, ":") + 1)
        gsub(/^[ \t]+|[ \t]+$/, "", v); cur = k
        if (k == "types") types = v
        else if (k == "uris") uris = v
        else if (k == "suites") suites = v
        else if (k == "components") comps = v
        else if (k == "enabled") enabled = tolower(v)
        next
      }
      END { flush() }
    ' "$f"
  done
}

host_is_debian() {
  # shellcheck disable=SC1091
  [ -r /etc/os-release ] && [ "$(. /etc/os-release && printf '%s' "${ID:-}")" = debian ]
}

# The Debian archive mirror to debootstrap from.
detect_mirror() {
  if [ -n "${CLAWDSPACE_DEBIAN_MIRROR:-}" ]; then
    printf '%s\n' "${CLAWDSPACE_DEBIAN_MIRROR%/}"
    return
  fi
  local found=
  if host_is_debian; then
    # Main-archive entries (a Debian suite, component main, not security), best
    # first: path ending in /debian, then any *debian.org host, then the rest
    # (e.g. a caching proxy). Third-party repos (other components or suites) drop out.
    found=$(apt_source_entries | awk '
      $1 !~ /^(https?|ftp):\/\// { next }
      $1 ~ /security/ || $2 ~ /-(security|backports)$/ { next }
      $2 !~ /^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|oldstable|testing|unstable)(-updates|-proposed-updates)?$/ { next }
      { ok = 0; for (i = 3; i <= NF; i++) if ($i == "main") ok = 1; if (!ok) next }
      { u = $1; sub(/\/+$/, "", u)
        rank = (u ~ /\/debian$/) ? 1 : (u ~ /debian\.org/) ? 2 : 3
        if (best == "" || rank < bestrank) { best = u; bestrank = rank } }
      END { if (best != "") print best }')
  fi
  printf '%s\n' "${found:-$DEFAULT_MIRROR}"
}

# The Debian security mirror for the base's apt sources, or nothing.
detect_security_mirror() {
  if [ -n "${CLAWDSPACE_DEBIAN_SECURITY_MIRROR:-}" ]; then
    [ "$CLAWDSPACE_DEBIAN_SECURITY_MIRROR" = none ] || printf '%s\n' "${CLAWDSPACE_DEBIAN_SECURITY_MIRROR%/}"
    return
  fi
  if host_is_debian; then
    apt_source_entries | awk '
      $1 ~ /^(https?|ftp):\/\// && $2 ~ /-security$/ { u = $1; sub(/\/+$/, "", u); print u; exit }'
  elif [ -z "${CLAWDSPACE_DEBIAN_MIRROR:-}" ]; then
    printf '%s\n' "$DEFAULT_SECURITY_MIRROR"
  fi
}

# Whether the machine's apt sources carry an -updates suite on MIRROR.
mirror_has_updates() {
  local mirror=$1
  host_is_debian || return 0
  apt_source_entries | awk -v m="$mirror" '
    { u = $1; sub(/\/+$/, "", u) } u == m && $2 ~ /-updates$/ { found = 1 } END { exit !found }'
}

apt_install() {
  [ "$(id -u)" -eq 0 ] || fail "need to install $* but not root." "Run: sudo apt-get install -y $*"
  have apt-get || fail "need $* but apt-get is missing." "Install $* by hand, then run this again."
  log "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update || fail "apt-get update failed." "Fix the apt sources or the network, then run this again."
  apt-get install -y --no-install-recommends "$@" || fail "apt-get install $* failed (see above)."
}

# ------------------------------------------------------- offline base image
ROOTFS=
cleanup_rootfs() {
  [ -n "$ROOTFS" ] && [ -d "$ROOTFS" ] || return 0
  # Unmount anything debootstrap left mounted inside (deepest first), then
  # delete without ever crossing into another filesystem.
  local mp
  awk -v r="$ROOTFS" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null |
    sort -r | while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true; done
  rm -rf --one-file-system "$ROOTFS" 2>/dev/null || log "WARNING: could not remove $ROOTFS completely; remove it by hand"
  ROOTFS=
}

build_offline_base() {
  if image_exists "$OFFLINE_BASE"; then
    log "offline base $OFFLINE_BASE exists already; reusing it (docker rmi $OFFLINE_BASE to rebuild it)"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || fail "no registry answers, so the Debian base must be built locally with debootstrap, which needs root." \
    "Run: sudo $0 ${TAG}" \
    "(or set CLAWDSPACE_BASE to a Debian/Ubuntu image you already have)"
  [ "$(uname -s)" = Linux ] || fail "building the offline base needs Linux."

  have debootstrap || apt_install debootstrap
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || apt_install debian-archive-keyring
  [ -r "$keyring" ] || fail "Debian's archive keyring $keyring is missing." "Install the debian-archive-keyring package."
  have wget || have curl || apt_install wget

  local mirror security t
  mirror=$(detect_mirror)
  security=$(detect_security_mirror)
  log "building the offline base $OFFLINE_BASE with debootstrap (minbase, $SUITE) from $mirror"
  log "  (typically about a minute; set CLAWDSPACE_DEBIAN_MIRROR to use another mirror)"

  mkdir -p "$ROOTFS_PARENT"
  ROOTFS=$(mktemp -d "$ROOTFS_PARENT/clawdspace-rootfs.XXXXXX")
  trap cleanup_rootfs EXIT
  trap 'cleanup_rootfs; exit 130' INT TERM

  t=$SECONDS
  if ! debootstrap --variant=minbase --include=bash,ca-certificates --keyring="$keyring" \
      "$SUITE" "$ROOTFS" "$mirror"; then
    [ -r "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 25 "$ROOTFS/debootstrap/debootstrap.log" | sed 's/^/    /' >&2
    fail "debootstrap failed (log above)." \
      "Check that $mirror serves Debian $SUITE (or set CLAWDSPACE_DEBIAN_MIRROR)," \
      "and that $ROOTFS_PARENT allows device files and exec (or set CLAWDSPACE_ROOTFS_TMP)."
  fi
  log "debootstrap done in $(elapsed "$t")"

  # apt sources inside the base: the same mirror, so the Dockerfile's apt-get works.
  {
    printf 'deb %s %s main\n' "$mirror" "$SUITE"
    if mirror_has_updates "$mirror"; then printf 'deb %s %s-updates main\n' "$mirror" "$SUITE"; fi
    if [ -n "$security" ]; then printf 'deb %s %s-security main\n' "$security" "$SUITE"; fi
  } >"$ROOTFS/etc/apt/sources.list"
  grep -qF "deb $mirror $SUITE main" "$ROOTFS/etc/apt/sources.list" ||
    fail "could not write apt sources into the base"
  log "apt sources in the base:"
  sed 's/^/    /' "$ROOTFS/etc/apt/sources.list" >&2

  # Leave out the build machine's own traces, apt caches, and (like
  # debian:*-slim) documentation, man pages and translations.
  chroot "$ROOTFS" apt-get clean >/dev/null 2>&1 || true
  find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
  find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* \
         "$ROOTFS"/usr/share/groff/* "$ROOTFS"/usr/share/lintian/* "$ROOTFS"/var/cache/debconf/*-old
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
         "$ROOTFS"/var/log/bootstrap.log "$ROOTFS"/debootstrap
  : >"$ROOTFS/etc/resolv.conf"
  printf 'localhost\n' >"$ROOTFS/etc/hostname"

  log "importing the root filesystem into Docker as $OFFLINE_BASE"
  t=$SECONDS
  local tmp_tag="$OFFLINE_BASE-partial-$$"
  tar --numeric-owner --xattrs -C "$ROOTFS" \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' --exclude='./tmp/*' \
      -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["bash"]' \
      --message "clawdspace: debootstrap --variant=minbase $SUITE $mirror" \
      - "$tmp_tag" >/dev/null ||
    { docker rmi "$tmp_tag" >/dev/null 2>&1 || true; fail "docker import of the base failed."; }
  # Tag only a complete import, so an interrupted run never leaves a broken base.
  docker tag "$tmp_tag" "$OFFLINE_BASE"
  docker rmi "$tmp_tag" >/dev/null
  log "imported $OFFLINE_BASE in $(elapsed "$t")"

  cleanup_rootfs
  trap - EXIT INT TERM
}

# ------------------------------------------------------------ choose base
BASE=
if [ -n "${CLAWDSPACE_BASE:-}" ]; then
  BASE=$CLAWDSPACE_BASE
  log "base: $BASE (from CLAWDSPACE_BASE)"
elif [ "${CLAWDSPACE_OFFLINE:-0}" != 1 ] && {
  log "trying the registry: docker pull $REGISTRY_BASE (at most ${PULL_TIMEOUT}s)"
  timeout "$PULL_TIMEOUT" docker pull -q "$REGISTRY_BASE" >/dev/null 2>&1
}; then
  BASE=$REGISTRY_BASE
  log "base: $BASE (pulled)"
elif image_exists "$REGISTRY_BASE"; then
  BASE=$REGISTRY_BASE
  log "base: $BASE (registry not reachable; using the local copy)"
else
  log "no registry reachable; using the offline Debian base"
  build_offline_base
  BASE=$OFFLINE_BASE
  log "base: $BASE"
fi

# ------------------------------------------------------------ build
build_env=()
if ! docker buildx version >/dev/null 2>&1; then
  # Without the buildx plugin a recent client refuses DOCKER_BUILDKIT=1; the
  # classic builder builds this Dockerfile fine.
  build_env=(DOCKER_BUILDKIT=0)
fi
revision=$(git -C "$SCRIPT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
recipe=$(recipe_hash)

log "building $TAG from $BASE (recipe $recipe)"
t=$SECONDS
env "${build_env[@]}" docker build \
  --build-arg "BASE=$BASE" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.base.name=$BASE" \
  --label "$RECIPE_LABEL=$recipe" \
  -t "$TAG" -f "$SCRIPT_DIR/Dockerfile" "$SCRIPT_DIR" ||
  fail "docker build failed (see above)."
log "docker build done in $(elapsed "$t")"

log "smoke test: running the image"
docker run --rm "$TAG" bash -c 'id -u; git --version; python3 --version' >&2 ||
  fail "the image was built but does not run."

size=$(docker image inspect --format '{{.Size}}' "$TAG" 2>/dev/null || echo 0)
log "done: $TAG ($((size / 1024 / 1024)) MiB, base $BASE) in $(elapsed)"
