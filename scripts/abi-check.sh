#!/usr/bin/env bash
# The C ABI check: compares a built libshm_channel.so.N (with debug info) against the committed
# baseline tests/packaging/abi/libshm_channel.so.N.abi (abidw output, public types only).
#
#   scripts/abi-check.sh [LIB]            check (default LIB: build-pkg/libshm_channel.so.1,
#                                         built by scripts/package-deb.sh)
#   scripts/abi-check.sh --update [LIB]   write the baseline for LIB's soname
#
# Passes when nothing changed or functions were only added (abidiff --no-added-syms exits 0).
# Fails on a removed or changed function, a changed public struct or typedef, and so on
# (abidiff's exit bits: 4 = ABI change, 8 = incompatible change, 1/2 = error).
# --update refuses to overwrite a baseline with an incompatible ABI: that needs a new soname
# (a major version bump: PROJECT_VERSION in CMakeLists.txt and the node in c/src/shm_channel.map),
# hence a new baseline file. tests/packaging/abi/suppressions.abignore holds reviewed exceptions
# (new fields of shm_channel_stat_t taken from its reserved[] space); whatever they allow, the
# size of every public struct must stay the same.
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
lib=${1:-build-pkg/libshm_channel.so.1}
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ -n "$soname" ] || { echo "abi: $lib has no soname" >&2; exit 1; }
baseline=tests/packaging/abi/$soname.abi
supp=tests/packaging/abi/suppressions.abignore
abidw_args=(--headers-dir c/include --no-corpus-path --no-comp-dir-path --short-locs)

work=$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-abi-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

diff_abi() {  # exit status of abidiff baseline -> lib, report on stdout
  abidiff --no-added-syms --suppressions "$supp" --headers-dir2 c/include "$baseline" "$lib"
}
# Names of the structs and unions the public header defines (an opaque type such as
# struct shm_channel is only declared there: its size is private and may change).
public_types() {
  grep -hoE '^(typedef )?(struct|union) [A-Za-z_0-9]+ \{' c/include/*.h |
    sed -E 's/.*(struct|union) ([A-Za-z_0-9]+) \{/\2/' | sort -u
}
# "name size-in-bits" of every public struct or union defined in an ABI file.
sizes() {
  grep -oE "<(class|union)-decl name='[^']+' size-in-bits='[0-9]+'" "$1" |
    sed -E "s/.* name='([^']+)' size-in-bits='([0-9]+)'/\1 \2/" | sort -u |
    join - <(public_types)
}
# Fails (listing them) when a public struct of the baseline has another size in lib: the
# suppressions allow fields taken from reserved space, never a struct that grew.
same_sizes() {
  abidw "${abidw_args[@]}" "$lib" > "$work/new.abi"
  join <(sizes "$baseline") <(sizes "$work/new.abi") |
    awk '$2 != $3 { print "abi: struct " $1 " changed size: " $2 " -> " $3 " bits"; bad = 1 }
         END { exit bad }'
}

if [ $update = 1 ]; then
  if [ -f "$baseline" ] && ! { diff_abi >/dev/null && same_sizes; }; then
    diff_abi || true
    echo "abi: $lib breaks the ABI of $baseline: not updating it." >&2
    echo "abi: an incompatible change needs a new soname (major version bump)." >&2
    exit 1
  fi
  abidw "${abidw_args[@]}" "$lib" > "$baseline"
  echo "abi: wrote $baseline ($(abidw --version), $(cc --version | head -1))"
  exit 0
fi

if [ ! -f "$baseline" ]; then
  echo "abi: no baseline $baseline for soname $soname." >&2
  echo "abi: a new soname is a deliberate major version bump: run scripts/abi-check.sh --update" >&2
  exit 1
fi
set +e
report=$(diff_abi)
rc=$?
set -e
echo "$report"
if [ $rc = 0 ] && ! same_sizes; then
  rc=4
fi
if [ $rc = 0 ]; then
  echo "abi: $soname compatible with $baseline"
  exit 0
fi
what="an ABI change"
[ $((rc & 8)) = 0 ] || what="an incompatible ABI change (removed symbols)"
[ $((rc & 3)) = 0 ] || what="an abidiff error (exit $rc)"
echo "abi: FAILED: $what against $baseline (abidiff exit $rc). See README, 'ABI and soname policy'." >&2
exit 1
