#!/usr/bin/env bash
# Fetch the npm packages pinned in requirements/data-docs-assets/ (the CSS, scripts
# and fonts of GX's Data Docs pages) with npm into DEST, once.
# Usage: requirements/fetch-data-docs-assets.sh requirements/data-docs-assets \
#          .venv/share/memberscore/data-docs-assets
# `npm ci` installs exactly package-lock.json, each tarball checked against its
# integrity hash there, running no package's install scripts.  The manifest
# DEST/package-lock.sha256 (the lock's sha256) is written last: memberscore only
# copies from a folder whose fetch finished, and a folder whose manifest matches the
# lock is not fetched again.
set -euo pipefail
src=$1
dest=$2
manifest="$dest/package-lock.sha256"
sha=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
if [[ -f "$manifest" && "$(cat "$manifest")" == "$sha" && -d "$dest/node_modules" ]]; then
  echo "fetch-data-docs-assets: already present in $dest"
  exit 0
fi
command -v npm >/dev/null 2>&1 || {
  echo "fetch-data-docs-assets: npm is needed to fetch the Data Docs assets pinned in $src; install Node.js with npm (e.g. apt-get install npm)" >&2
  exit 1
}
start=$(date +%s)
mkdir -p "$dest"
rm -f "$manifest"
cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$dest/"
if ! out=$(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund 2>&1); then
  echo "$out" | tail -20 >&2
  echo "fetch-data-docs-assets: npm could not install $src/package-lock.json (command: cd $dest && npm ci --ignore-scripts --no-audit --no-fund)" >&2
  exit 1
fi
echo "$sha" >"$manifest"
echo "fetch-data-docs-assets: fetched into $dest with npm ($(($(date +%s) - start)) s)"
