#!/usr/bin/env bash
# Codex OAuth login inside a container: `codex login` listens for the
# browser callback on 127.0.0.1:1455, which a published port cannot reach.
# Forward the container's own addresses on 1455 to it, then log in.
set -euo pipefail

port=1455
command -v socat >/dev/null 2>&1 || { echo "setup-codex-auth: socat is missing" >&2; exit 1; }

pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

for addr in $(hostname -I 2>/dev/null || true); do
    case $addr in
        127.* | *:*) continue ;;
    esac
    socat "TCP-LISTEN:${port},bind=${addr},reuseaddr,fork" "TCP:127.0.0.1:${port}" &
    pids+=($!)
    echo ">> forwarding ${addr}:${port} to 127.0.0.1:${port} for the login callback" >&2
done

codex login "$@"
