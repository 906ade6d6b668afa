# shellcheck shell=bash
# Starts the in-container socat bridges that the task environment asks for.
# Sourced by init-ssh-and-repo.sh; idempotent (pid files in /tmp/.terok/).
#
#   127.0.0.1:$TEROK_VAULT_LOOPBACK_PORT  -> $TEROK_VAULT_SOCKET (/run/terok/vault/vault.sock)
#   /tmp/terok-vault.sock                 -> host.containers.internal:$TEROK_TOKEN_BROKER_PORT
#   /tmp/ssh-agent.sock                   -> ssh-agent-bridge.sh
#   127.0.0.1:9418                        -> $TEROK_GATE_SOCKET

_terok_bridge() {
    local name=$1 pidfile
    shift
    pidfile=/tmp/.terok/$name.pid
    mkdir -p /tmp/.terok
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        return 0
    fi
    command -v socat >/dev/null 2>&1 || return 0
    socat "$@" >/dev/null 2>&1 &
    echo $! >"$pidfile"
}

if [ -n "${TEROK_VAULT_LOOPBACK_PORT:-}" ]; then
    # The host starts the container's broker right after the container: wait (briefly) until
    # its socket is there and ours, so the agent's first request finds it.
    _terok_vault_socket=${TEROK_VAULT_SOCKET:-/run/terok/vault/vault.sock}
    _terok_wait=0
    while ! { [ -S "$_terok_vault_socket" ] && [ -w "$_terok_vault_socket" ]; } &&
        [ "$_terok_wait" -lt "${TEROK_VAULT_WAIT_TENTHS:-100}" ]; do
        sleep 0.1
        _terok_wait=$((_terok_wait + 1))
    done
    _terok_bridge vault-loopback \
        "TCP-LISTEN:${TEROK_VAULT_LOOPBACK_PORT},bind=127.0.0.1,reuseaddr,fork" \
        "UNIX-CONNECT:$_terok_vault_socket"
    unset _terok_vault_socket _terok_wait
fi
if [ -n "${TEROK_TOKEN_BROKER_PORT:-}" ]; then
    _terok_bridge vault-socket \
        UNIX-LISTEN:/tmp/terok-vault.sock,fork,unlink-early,mode=600 \
        "TCP:host.containers.internal:${TEROK_TOKEN_BROKER_PORT}"
fi
if [ -n "${TEROK_SSH_SIGNER_SOCKET:-}${TEROK_SSH_SIGNER_PORT:-}" ]; then
    _terok_bridge ssh-agent \
        UNIX-LISTEN:/tmp/ssh-agent.sock,fork,unlink-early,mode=600 \
        EXEC:/usr/local/bin/ssh-agent-bridge.sh
fi
if [ -n "${TEROK_GATE_SOCKET:-}" ]; then
    _terok_bridge gate \
        TCP-LISTEN:9418,bind=127.0.0.1,reuseaddr,fork \
        "UNIX-CONNECT:${TEROK_GATE_SOCKET}"
fi
unset -f _terok_bridge
