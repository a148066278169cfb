#!/usr/bin/env bash
# Fetch the pinned jars of requirements/jars.txt with Maven into DEST, once.
# Usage: requirements/fetch-jars.sh requirements/jars.txt .venv/share/memberscore/jars
# A jar already in DEST with the pinned sha256 is not fetched again; every jar is
# checked against its sha256; the manifest is copied into DEST last, so the Spark
# session factory only trusts a folder whose fetch finished.
set -euo pipefail
manifest=$1
dest=$2
mkdir -p "$dest"
fetched=0
present=0
start=$(date +%s)
while read -r coord sha rest; do
  [[ -z "$coord" || "$coord" == \#* ]] && continue
  IFS=: read -r group artifact version <<<"$coord"
  jar="$dest/$artifact-$version.jar"
  if [[ -f "$jar" ]] && echo "$sha  $jar" | sha256sum --check --status; then
    present=$((present + 1))
    continue
  fi
  command -v mvn >/dev/null 2>&1 || {
    echo "fetch-jars: Maven ('mvn') is needed to fetch $coord; install it (e.g. apt-get install maven)" >&2
    exit 1
  }
  echo "fetch-jars: $coord (Maven)"
  if ! out=$(mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="$coord" \
      -DoutputDirectory="$dest" -Dmdep.overWriteReleases=true 2>&1); then
    echo "$out" | tail -20 >&2
    echo "fetch-jars: Maven could not fetch $coord (command: mvn dependency:copy -Dartifact=$coord -DoutputDirectory=$dest)" >&2
    exit 1
  fi
  if ! echo "$sha  $jar" | sha256sum --check --status; then
    echo "fetch-jars: $jar does not have the sha256 pinned in $manifest; refusing it" >&2
    rm -f "$jar"
    exit 1
  fi
  fetched=$((fetched + 1))
done <"$manifest"
cp "$manifest" "$dest/jars.txt"
echo "fetch-jars: $fetched fetched, $present already present in $dest ($(($(date +%s) - start)) s)"
