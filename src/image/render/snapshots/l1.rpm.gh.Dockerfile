# L1: the agent image. Built on L0; installs the selected roster entries.
#
# Rendered by terok-executor (minijinja; variables: BASE_IMAGE, family, sources,
# node_version, npm_version,
# install_root_snippets, install_dev_snippets, installed_agents_csv,
# agents_label, installed_env_path). The selection also names the image
# (label `ai.terok.agents`) and the in-container manifest
# `/etc/terok/installed.env`.

ARG BASE_IMAGE=terok-l0:latest
FROM ${BASE_IMAGE}

ENV PIPX_HOME=/opt/pipx \
    PIPX_BIN_DIR=/usr/local/bin

# --- Shared toolchain (cached across agent selections) ---
USER root
ENV HOME=/root

# Node 22 from NodeSource is the one shared external package source;
# per-agent repositories come with the agents' install snippets.
RUN set -eux; \
    curl -fsSL https://rpm.nodesource.com/setup_22.x | bash -; \
    dnf install -y --setopt=install_weak_deps=False \
            curl ca-certificates gnupg2 \
            python3 python3-pip pipx \
            nodejs fd-find jq unzip wget socat; \
    dnf clean all

# yq, ast-grep and uv: used by install snippets and at run time.
RUN set -eux; \
    case "$(uname -m)" in \
      x86_64) ARCH=amd64 ;; \
      aarch64) ARCH=arm64 ;; \
      *) echo "unsupported architecture: $(uname -m)" >&2; exit 1 ;; \
    esac; \
    YQ_VERSION=v4.52.4; \
    curl -fsSL -o /usr/local/bin/yq \
      "https://github.com/mikefarah/yq/releases/download/${YQ_VERSION}/yq_linux_${ARCH}"; \
    chmod +x /usr/local/bin/yq; \
    pip install --break-system-packages ast-grep-cli; \
    curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh

# Global npm packages (the agents' adapters and CLIs) go to /usr/local, owned by root and
# read-only at run time; per-user installs keep using the dev prefix below.
ENV NPM_CONFIG_PREFIX=/usr/local \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# Shell environment for login, interactive and non-interactive shells.
# Debian's bash reads /etc/bash.bashrc, Fedora's /etc/bashrc.
COPY scripts/terok-env.sh /etc/profile.d/terok-env.sh
RUN chmod +x /etc/profile.d/terok-env.sh; \
    bashrc=/etc/bashrc; \
    printf '\n# terok environment (PATH, git identity, agent wrappers)\n. /etc/profile.d/terok-env.sh\n' >> "$bashrc"; \
    printf '\n# Help banner (interactive shells only)\nif [ -t 1 ] && [ -z "$_TEROK_BANNER_SHOWN" ]; then\n  export _TEROK_BANNER_SHOWN=1\n  hilfe --kurz 2>/dev/null || true\nfi\n' >> "$bashrc"

# Per-task agent wrappers arrive with the agent config mount.
RUN mkdir -p /usr/local/share/terok && \
    ln -s /home/dev/.terok/terok-executor.sh /usr/local/share/terok/terok-env-wrappers.sh

# --- Cache bust point: everything below follows the agent selection ---
ARG AGENT_CACHE_BUST=0

COPY scripts/ /tmp/terok-scripts/
COPY help.d/ /usr/local/share/terok/help.d/

RUN set -eux; \
    cp /tmp/terok-scripts/terok-env-git-identity.sh /usr/local/share/terok/; \
    cp /tmp/terok-scripts/terok-acp-env.sh /usr/local/share/terok/; \
    cp /tmp/terok-scripts/terok-env.sh /etc/profile.d/terok-env.sh; \
    cp /tmp/terok-scripts/hilfe /usr/local/bin/hilfe; \
    chmod +x /usr/local/share/terok/terok-env-git-identity.sh \
             /usr/local/share/terok/terok-acp-env.sh \
             /usr/local/bin/hilfe

# --- Roster installs, root part ---


RUN set -eux; \
    curl -fsSL -o /etc/yum.repos.d/gh-cli.repo \
      "https://cli.github.com/packages/rpm/gh-cli.repo"; \
    dnf install -y gh; \
    dnf clean all




# --- Roster installs, dev part ---
ENV HOME=/home/dev
ENV NPM_CONFIG_PREFIX=/home/dev/.npm-packages \
    PATH=/home/dev/.npm-packages/bin:/home/dev/.local/bin:/home/dev/.opencode/bin:$PATH \
    BASH_ENV=/etc/profile.d/terok-env.sh
USER dev
WORKDIR /home/dev

RUN mkdir -p "$NPM_CONFIG_PREFIX" && npm config set prefix "$NPM_CONFIG_PREFIX"



# Stamp the manifest: the selection, the sources, and every package version installed.
USER root
RUN set -eu; \
    mkdir -p /etc/terok; \
    TEROK_INSTALLED_AGENTS='gh' TEROK_BUILD_SOURCES='vendors' \
      sh /tmp/terok-scripts/terok-installed-versions > /etc/terok/installed.env; \
    cat /etc/terok/installed.env; \
    rm -rf /tmp/terok-scripts
USER dev

LABEL ai.terok.agents="gh" \
      ai.terok.sources="vendors"

WORKDIR /workspace
# CMD is inherited from L0 (init-ssh-and-repo.sh).
