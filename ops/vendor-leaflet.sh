#!/usr/bin/env bash
# Vendor Leaflet's dist (leaflet.js, leaflet.css, LICENSE) into the console's static files,
# from the npm registry at a pinned version, checked against the registry's published
# integrity (sha512 of the package tarball). The files are committed: the console serves
# them itself (no CDN) and a production image needs no npm. Only needed to update Leaflet:
#   LEAFLET_VERSION=1.9.5 LEAFLET_INTEGRITY=sha512-... bash ops/vendor-leaflet.sh
# (`npm view leaflet@1.9.5 dist.integrity` gives the integrity), then commit the files.
# `bash ops/vendor-leaflet.sh --check` fetches the pinned version again and fails if the
# committed files differ from it.
set -euo pipefail

VERSION="${LEAFLET_VERSION:-1.9.4}"
INTEGRITY="${LEAFLET_INTEGRITY:-sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/services/alert_api/console/static/vendor/leaflet"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "leaflet@$VERSION" >/dev/null)
tarball="$work/leaflet-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
  echo "leaflet@$VERSION: integrity $actual, expected $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
out="$work/out"
mkdir -p "$out"
cp "$work/package/dist/leaflet.js" "$work/package/dist/leaflet.css" "$work/package/LICENSE" "$out/"
printf 'leaflet %s\n%s\n' "$VERSION" "$INTEGRITY" > "$out/VERSION"
(cd "$out" && sha256sum LICENSE VERSION leaflet.css leaflet.js > SHA256SUMS)

if [ "${1:-}" = "--check" ]; then
  diff -r "$out" "$DEST" && echo "vendored leaflet@$VERSION matches the registry"
  exit
fi
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$out"/* "$DEST/"
echo "leaflet@$VERSION vendored in ${DEST#"$ROOT"/}:"
cat "$DEST/SHA256SUMS"
