#!/bin/sh
# The container's entrypoint: the HTTP API on all interfaces (the container's port is what is
# published), and only with a token: every endpoint but /health then needs
# "Authorization: Bearer $VT_API_TOKEN". Extra arguments go to `vt cogvideo serve`.
set -eu
if [ -z "${VT_API_TOKEN:-}" ]; then
    echo "vt: error: VT_API_TOKEN is not set: the API listens on 0.0.0.0 in the container and" \
         "needs a token (docker run -e VT_API_TOKEN=...)" >&2
    exit 2
fi
exec vt cogvideo serve --host 0.0.0.0 --port "${VT_PORT:-8000}" \
    --artifact-dir "${VT_ARTIFACT_DIR:-/app/outputs}" --lora-dir "${VT_LORA_DIR:-/app/loras}" "$@"
