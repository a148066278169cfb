#!/usr/bin/env bash
# Fetch the local Kafka broker's jars with Maven into DEST, once.
# Usage: requirements/fetch-broker-jars.sh requirements/broker/pom.xml requirements/broker-jars.txt DEST
# Maven resolves the pom's one pin (Apache Kafka) and its runtime dependencies into a
# scratch folder; exactly the files of the manifest, each with its sha256, are accepted
# (a missing, extra or changed jar refuses the whole set).  The manifest is copied into
# DEST last, so the broker harness only trusts a folder whose fetch finished.
set -euo pipefail
pom=$1
manifest=$2
dest=$3
start=$(date +%s)
sums=$(grep -v '^#' "$manifest" | grep -v '^[[:space:]]*$')
if [[ -f "$dest/broker-jars.txt" ]] && cmp -s "$manifest" "$dest/broker-jars.txt" \
    && (cd "$dest" && echo "$sums" | sha256sum --check --status); then
  echo "fetch-broker-jars: $(echo "$sums" | wc -l) jars already present in $dest"
  exit 0
fi
command -v mvn >/dev/null 2>&1 || {
  echo "fetch-broker-jars: Maven ('mvn') is needed to fetch the local Kafka broker ($pom); install it (e.g. apt-get install maven)" >&2
  exit 1
}
scratch="$dest.partial"
rm -rf "$scratch"
mkdir -p "$scratch"
echo "fetch-broker-jars: Apache Kafka and its dependencies ($pom, Maven)"
if ! out=$(mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$(cd "$scratch" && pwd)" 2>&1); then
  echo "$out" | tail -20 >&2
  echo "fetch-broker-jars: Maven could not resolve $pom (command: mvn -f $pom dependency:copy-dependencies -DincludeScope=runtime)" >&2
  exit 1
fi
if ! check=$(cd "$scratch" && echo "$sums" | sha256sum --check 2>&1); then
  echo "$check" | grep -v ': OK$' >&2
  echo "fetch-broker-jars: the jars Maven resolved do not have the sha256s pinned in $manifest; refusing them" >&2
  exit 1
fi
extra=$(cd "$scratch" && ls *.jar | grep -vxF -f <(echo "$sums" | awk '{print $2}') || true)
if [[ -n "$extra" ]]; then
  echo "fetch-broker-jars: Maven resolved jars that $manifest does not pin: $extra" >&2
  exit 1
fi
rm -rf "$dest"
mv "$scratch" "$dest"
cp "$manifest" "$dest/broker-jars.txt"
echo "fetch-broker-jars: $(echo "$sums" | wc -l) jars fetched into $dest ($(($(date +%s) - start)) s)"
