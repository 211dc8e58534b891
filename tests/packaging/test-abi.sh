#!/usr/bin/env bash
# The ABI check itself: scripts/abi-check.sh passes on the library as built, on a library
# with one more function and on one whose shm_channel_stat_t took a field from reserved[]; it
# fails on one with a function removed and on ones whose shm_channel_stat_t grew (a field at
# the end; a field before reserved[] left whole). Variants: same sources and flags.
#
#   tests/packaging/test-abi.sh [LIB]     (default: build-pkg/libshm_channel.so.1)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
lib=$(realpath "${1:-build-pkg/libshm_channel.so.1}")
work=$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-abi.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
fail() { echo "abi: FAILED: $*" >&2; exit 1; }

echo "--- abi: the library as built"
scripts/abi-check.sh "$lib" | tail -1

# link NAME INCLUDE_DIR VERSION_SCRIPT [EXTRA_SOURCE]: a variant of libshm_channel.so.1.
link() {
  local name=$1 inc=$2 map=$3 extra=${4:-}
  mkdir -p "$work/$name"
  # shellcheck disable=SC2086  # $extra is one path or nothing
  cc -std=c11 -O2 -g -fPIC -fvisibility=hidden -DSHM_CHANNEL_BUILDING -I"$inc" -Ic/src \
    -shared -Wl,-soname,libshm_channel.so.1 -Wl,--version-script="$map" \
    c/src/*.c $extra -o "$work/$name/libshm_channel.so.1"
}
expect() {  # expect pass|fail NAME
  if scripts/abi-check.sh "$work/$2/libshm_channel.so.1" >"$work/$2.log" 2>&1; then got=pass; else got=fail; fi
  [ "$got" = "$1" ] || { cat "$work/$2.log"; fail "$2: abi-check should $1"; }
  if [ "$1" = pass ]; then echo "ok: $2: accepted"; else echo "ok: $2: rejected ($(grep -o 'abidiff exit [0-9]*' "$work/$2.log"))"; fi
}

echo "--- abi: variants"
cat > "$work/added.c" <<'C'
#include "shm_channel.h"
SHM_CHANNEL_API int shm_channel_added_in_a_minor_version(void);
int shm_channel_added_in_a_minor_version(void) { return 0; }
C
link added c/include c/src/shm_channel.map "$work/added.c"
expect pass added

# shm_channel_abort hidden by the version script (a name beats a pattern): gone from the ABI.
sed 's/local: \*;/local: shm_channel_abort; *;/' c/src/shm_channel.map > "$work/removed.map"
grep -q 'local: shm_channel_abort' "$work/removed.map" || fail "cannot edit the version script"
link removed c/include "$work/removed.map"
expect fail removed

mkdir -p "$work/inc"
sed 's/^} shm_channel_stat_t;/    uint64_t added_field;\n&/' c/include/shm_channel.h > "$work/inc/shm_channel.h"
grep -q added_field "$work/inc/shm_channel.h" || fail "cannot edit the header"
link struct_grown "$work/inc" c/src/shm_channel.map
expect fail struct_grown
# A field taken from reserved[]: compatible (the suppression), reserved[] shrinks to match.
mkdir -p "$work/inc_reserved"
sed 's/^    uint64_t reserved\[8\];/    uint64_t new_counter;\n    uint64_t reserved[7];/' \
  c/include/shm_channel.h > "$work/inc_reserved/shm_channel.h"
grep -q new_counter "$work/inc_reserved/shm_channel.h" || fail "cannot edit the header"
link reserved_used "$work/inc_reserved" c/src/shm_channel.map
expect pass reserved_used

# The same field, but reserved[] kept its length: the struct grew, so not compatible.
mkdir -p "$work/inc_reserved_grown"
sed 's/^    uint64_t reserved\[8\];/    uint64_t new_counter;\n&/' \
  c/include/shm_channel.h > "$work/inc_reserved_grown/shm_channel.h"
link reserved_grown "$work/inc_reserved_grown" c/src/shm_channel.map
expect fail reserved_grown
echo "abi: ok"
