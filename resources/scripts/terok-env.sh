# shellcheck shell=bash
# terok shell environment: PATH, git identity helpers and per-task agent
# wrappers. Sourced by login, interactive and (through BASH_ENV)
# non-interactive bash.
case ":$PATH:" in
    *:/home/dev/.npm-packages/bin:*) ;;
    *) PATH="/home/dev/.npm-packages/bin:/home/dev/.local/bin:/home/dev/.opencode/bin:$PATH" ;;
esac
export PATH
export NPM_CONFIG_PREFIX=/home/dev/.npm-packages
[ -f /etc/terok/installed.env ] && . /etc/terok/installed.env && export TEROK_INSTALLED_AGENTS
[ -r /usr/local/share/terok/terok-env-git-identity.sh ] && . /usr/local/share/terok/terok-env-git-identity.sh
# Per-task wrappers (written by the launcher into the agent config mount).
[ -r /usr/local/share/terok/terok-env-wrappers.sh ] && . /usr/local/share/terok/terok-env-wrappers.sh
true
