# L0: the base development image shared by every agent image.
#
# Rendered by terok-executor (minijinja; variables: BASE_IMAGE, family).
# Distro packages, the `dev` user (UID 1000, passwordless sudo), the
# workspace and the container init script. Everything per-user and
# per-task (repository, SSH, branch) is supplied at run time.

ARG BASE_IMAGE=ubuntu:24.04
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    REPO_ROOT="/workspace" \
    GIT_RESET_MODE="none" \
    LANG="en_US.UTF-8" \
    LC_ALL="en_US.UTF-8" \
    LANGUAGE="en_US:en" \
    USER="dev"

# Tools every task needs. tzdata lets the TZ variable set from the host
# resolve; socat carries the in-container bridges.
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates curl gnupg git locales openssh-client \
      socat sudo ripgrep vim tmux tzdata \
    && rm -rf /var/lib/apt/lists/*

# en_US.UTF-8 must exist so shells can always set LC_ALL.
RUN set -eux; \
    sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen; \
    grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >> /etc/locale.gen; \
    locale-gen en_US.UTF-8

# Extra certificate authorities (`build --ca-cert`), such as a company proxy's that inspects
# TLS, join the system trust store; every tool in the image is pointed at that store, so
# Node, pip, uv and Python's requests trust what the system trusts.
COPY ca-certs/ /tmp/terok-ca-certs/
RUN set -eux; \
    for cert in /tmp/terok-ca-certs/*.crt; do \
      [ -e "$cert" ] || continue; \
      mkdir -p /usr/local/share/ca-certificates/terok; \
      cp "$cert" /usr/local/share/ca-certificates/terok/; \
    done; \
    update-ca-certificates; \
    rm -rf /tmp/terok-ca-certs
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# The `dev` user is UID 1000: an existing UID-1000 account (ubuntu's
# `ubuntu`, for example) is renamed, its subordinate ID ranges follow it.
RUN set -eux; \
    owner="$(getent passwd 1000 | cut -d: -f1 || true)"; \
    if [ -n "$owner" ] && [ "$owner" != "dev" ]; then \
      if getent group "$owner" >/dev/null; then groupmod -n dev "$owner" || true; fi; \
      usermod -l dev "$owner"; \
      usermod -d /home/dev -m dev; \
      for f in /etc/subuid /etc/subgid; do \
        [ -f "$f" ] && sed -i "s/^${owner}:/dev:/" "$f"; \
      done; \
    fi; \
    getent group dev >/dev/null || groupadd dev; \
    id -u dev >/dev/null 2>&1 || useradd -m -u 1000 -g dev -s /bin/bash dev; \
    [ "$(id -u dev)" = "1000" ] || usermod -u 1000 dev; \
    echo 'dev ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/dev; \
    chmod 0440 /etc/sudoers.d/dev; \
    visudo -cf /etc/sudoers.d/dev; \
    mkdir -p /workspace /home/dev/.ssh; \
    chown -R dev:dev /home/dev /workspace; \
    chmod 700 /home/dev/.ssh; \
    chmod 0777 /workspace

WORKDIR /workspace

COPY scripts/init-ssh-and-repo.sh /usr/local/bin/init-ssh-and-repo.sh
COPY scripts/ssh-agent-bridge.sh /usr/local/bin/ssh-agent-bridge.sh
COPY scripts/ensure-bridges.sh /usr/local/bin/ensure-bridges.sh
RUN chmod +x /usr/local/bin/init-ssh-and-repo.sh /usr/local/bin/ssh-agent-bridge.sh /usr/local/bin/ensure-bridges.sh

# tmux for persistent login sessions.
COPY tmux/container-tmux.conf /etc/tmux.conf

ENV HOME=/home/dev
USER dev
CMD ["init-ssh-and-repo.sh"]
