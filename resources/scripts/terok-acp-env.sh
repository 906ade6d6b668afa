# shellcheck shell=bash
# Sourced by every terok-<agent>-acp wrapper before it execs the adapter:
# the shell environment plus the agent's git identity.
#   terok_acp_env <agent> <git name> <git email>
. /etc/profile.d/terok-env.sh
terok_acp_env() {
    export TEROK_ACP_AGENT=$1
    if command -v terok_git_identity >/dev/null 2>&1; then
        terok_git_identity "$2" "$3"
    fi
    cd "${REPO_ROOT:-/workspace}" 2>/dev/null || true
}
