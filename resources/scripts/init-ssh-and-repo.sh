#!/usr/bin/env bash
# Container init: SSH setup, repository checkout, in-container bridges.
#
# Runs as `dev` at container start (the image CMD), or first in a task
# command (`init-ssh-and-repo.sh && <agent> ...`). With arguments, it runs
# them once initialisation succeeded. Prints ">> init complete" when done.
set -euo pipefail

log() { printf '>> %s\n' "$*" >&2; }

# Bridges (vault, SSH agent, gate) come first: the clone may need them.
if [ -r /usr/local/bin/ensure-bridges.sh ]; then
    # shellcheck source=/dev/null
    . /usr/local/bin/ensure-bridges.sh
fi

mkdir -p "$HOME/.ssh" 2>/dev/null && chmod 700 "$HOME/.ssh" 2>/dev/null || true
if [ -S /tmp/ssh-agent.sock ] && [ -z "${SSH_AUTH_SOCK:-}" ]; then
    export SSH_AUTH_SOCK=/tmp/ssh-agent.sock
fi

repo_root=${REPO_ROOT:-/workspace}
source_url=${CLONE_FROM:-${CODE_REPO:-}}
if [ -n "$source_url" ] && [ ! -d "$repo_root/.git" ]; then
    if [ -z "$(ls -A "$repo_root" 2>/dev/null)" ]; then
        log "cloning $source_url into $repo_root"
        git clone ${GIT_BRANCH:+--branch "$GIT_BRANCH"} "$source_url" "$repo_root"
        if [ -n "${CODE_REPO:-}" ] && [ "${CODE_REPO}" != "$source_url" ]; then
            git -C "$repo_root" remote set-url origin "$CODE_REPO"
        fi
    else
        log "$repo_root is not empty and not a git repository; not cloning"
    fi
elif [ -d "$repo_root/.git" ] && [ -n "${GIT_BRANCH:-}" ]; then
    current=$(git -C "$repo_root" rev-parse --abbrev-ref HEAD 2>/dev/null || true)
    if [ "$current" != "$GIT_BRANCH" ]; then
        git -C "$repo_root" checkout "$GIT_BRANCH" 2>/dev/null ||
            git -C "$repo_root" checkout -b "$GIT_BRANCH"
    fi
fi
case ${GIT_RESET_MODE:-none} in
    hard) [ -d "$repo_root/.git" ] && git -C "$repo_root" reset --hard ;;
    none | "") ;;
    *) log "unknown GIT_RESET_MODE=$GIT_RESET_MODE; ignored" ;;
esac

log "init complete"
if [ $# -gt 0 ]; then
    exec "$@"
fi
