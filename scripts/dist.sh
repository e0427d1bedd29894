#!/usr/bin/env bash
# make dist: the release tarball that deploy/aws/user-data.sh installs
# (README, "Production on AWS", step 2). At its top level: bin/central,
# bin/edged, models/ (the pinned runtime files, verified first, and the
# manifest naming their source packages, licences and SHA-256), deploy/
# (without its Go tests), README.md and docs/. The archive is reproducible:
# sorted, owned by root, every mtime the commit's, gzip without a name or
# time, so the same commit and binaries give the same bytes.
#
# Environment: BIN (default bin), MODELS_DIR (default models/cache),
# DIST_DIR (default dist), VERSION (default git describe).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-bin}
models=${MODELS_DIR:-models/cache}
out=${DIST_DIR:-dist}
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
name=faceauth-$version-linux-amd64.tar.gz

for b in central edged; do
  [ -x "$bin/$b" ] || { echo "dist: $bin/$b is missing: run make build" >&2; exit 1; }
done
"$bin/central" models verify --models-dir "$models" >/dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -d "$stage/bin" "$stage/models"
install -m 0755 "$bin/central" "$bin/edged" "$stage/bin/"
"$bin/central" models list --models-dir "$models" | while read -r f; do
  install -D -m 0644 "$models/$f" "$stage/models/$f"
done
install -m 0644 models/manifest.json "$stage/models/manifest.json"
(cd deploy && find . -type f ! -name '*.go' -print0) | while IFS= read -r -d '' f; do
  mode=0644
  [ -x "deploy/$f" ] && mode=0755
  install -D -m "$mode" "deploy/$f" "$stage/deploy/$f"
done
install -m 0644 README.md "$stage/"
cp -r docs "$stage/"

mkdir -p "$out"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$stage" -cf - . | gzip -n > "$out/$name"
(cd "$out" && sha256sum "$name" > "$name.sha256")
echo "$out/$name"
