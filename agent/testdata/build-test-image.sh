#!/usr/bin/env bash
# Builds the tiny image the Docker executor's tests and the e2e suites run:
# FROM scratch with a static busybox at /busybox, no ENTRYPOINT, CMD
# ["/busybox", "sleep", "3600"], and an anonymous volume at /data (so that
# tests can check that removing a task removes its volumes). No registry is
# needed: the only input is Debian's busybox-static, which .ci/run installs
# (apt-get install -y busybox-static).
#
# Usage: build-test-image.sh [TAG]   (default shoal-test/busybox:1)
# Building the same tag twice is harmless: the result is the same image.
set -euo pipefail

tag="${1:-shoal-test/busybox:1}"
busybox="${SHOAL_TEST_BUSYBOX:-/bin/busybox}"

if ! command -v docker >/dev/null; then
    echo "Error: the docker CLI is not installed: it builds the test image $tag" >&2
    exit 1
fi
if [ ! -x "$busybox" ]; then
    echo "Error: $busybox not found: install Debian's busybox-static (apt-get install -y busybox-static) to build the test image $tag" >&2
    exit 1
fi
# A dynamically linked busybox (Debian's plain busybox) cannot run FROM scratch.
if command -v ldd >/dev/null && ldd "$busybox" >/dev/null 2>&1; then
    echo "Error: $busybox is dynamically linked: install Debian's busybox-static (apt-get install -y busybox-static) to build the test image $tag" >&2
    exit 1
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$busybox" "$context/busybox"
cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /busybox
VOLUME /data
CMD ["/busybox", "sleep", "3600"]
DOCKERFILE
# The legacy builder needs nothing but the engine (BuildKit may be absent);
# its output is shown only when it fails.
if ! out="$(DOCKER_BUILDKIT=0 docker build --quiet --label com.shoal.test-image=1 -t "$tag" "$context" 2>&1)"; then
    echo "Error: building the test image $tag failed: $out" >&2
    exit 1
fi
echo "$tag"
