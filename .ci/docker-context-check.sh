#!/usr/bin/env bash
# No container engine can pull base images on our machines (no registry access), so CI cannot
# build the image. Instead this builds the release binary the way the Dockerfile's build stage
# does: in a clean folder holding only the files its COPY lines name (read from the
# Dockerfile itself), with `cargo build --release --locked --bin closeloop`. A file the build
# needs but the Dockerfile does not copy fails here. It also checks that .dockerignore keeps
# target/ and .git out of the context.
set -euo pipefail
cd "$(dirname "$0")/.."
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# The build stage: from the first FROM up to the second.
stage=$(awk '/^FROM /{n++} n==1' Dockerfile)
copies=$(printf '%s\n' "$stage" | grep -E '^COPY ' | grep -v -- '--from=')
[ -n "$copies" ] || { echo "FAIL: no COPY lines in the Dockerfile's build stage" >&2; exit 1; }
while read -r _ args; do
    # `COPY a b c ./` or `COPY src ./src`: every word but the last is a source.
    read -ra words <<<"$args"
    n=${#words[@]}
    dest=${words[$((n - 1))]}
    for src in "${words[@]:0:$((n - 1))}"; do
        [ -e "$src" ] || { echo "FAIL: the Dockerfile copies $src, which does not exist" >&2; exit 1; }
        if [ "$dest" = "./" ] || [ "$dest" = "." ]; then
            cp -r "$src" "$ctx/"
        else
            mkdir -p "$ctx/$(dirname "$dest")"
            cp -r "$src" "$ctx/$dest"
        fi
    done
done <<<"$copies"
echo "build context: $(cd "$ctx" && ls -A | tr '\n' ' ')"

for ignored in target .git; do
    grep -qxE "/?$ignored/?" .dockerignore \
        || { echo "FAIL: .dockerignore does not exclude $ignored" >&2; exit 1; }
done

# Reuse compiled dependencies between runs; the crate itself is built from the clean copy.
export CARGO_TARGET_DIR="${DOCKER_CHECK_TARGET_DIR:-$PWD/target/docker-check}"
(cd "$ctx" && cargo build --release --locked --bin closeloop --quiet)
"$CARGO_TARGET_DIR/release/closeloop" --help >/dev/null
echo "the release binary builds from exactly the files the Dockerfile copies"
