#!/usr/bin/env bash
# One SSH-agent connection (stdin/stdout, from socat) to the host's signer:
# the token line first, then the agent protocol relayed as it is.
set -euo pipefail
token=${TEROK_SSH_SIGNER_TOKEN:?TEROK_SSH_SIGNER_TOKEN is not set}
if [ -n "${TEROK_SSH_SIGNER_SOCKET:-}" ]; then
    target="UNIX-CONNECT:${TEROK_SSH_SIGNER_SOCKET}"
else
    target="TCP:host.containers.internal:${TEROK_SSH_SIGNER_PORT:?no signer socket or port}"
fi
{ printf '%s\n' "$token"; cat; } | socat - "$target"
