#!/bin/sh
# One rule directory per catalog rule (the rule file and policy.yaml), plus policy-only,
# for `bench_core_ab.py --rules DIR --catalog-only`: which rule costs what.
# usage: scripts/split_catalog.sh OUT_DIR
set -eu
out=${1:?usage: scripts/split_catalog.sh OUT_DIR}
cat=$(dirname "$0")/../floorwalker/rules/catalog
mkdir -p "$out/policy-only"
cp "$cat/policy.yaml" "$out/policy-only/"
for f in "$cat"/*.yaml; do
  name=$(basename "$f" .yaml)
  [ "$name" = policy ] && continue
  mkdir -p "$out/$name"
  cp "$f" "$cat/policy.yaml" "$out/$name/"
done
ls "$out"
