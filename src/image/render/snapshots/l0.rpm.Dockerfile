# L0: the base development image shared by every agent image.
#
# Rendered by terok-executor (minijinja; variables: BASE_IMAGE, family).
# Distro packages, the `dev` user (UID 1000, passwordless sudo), the
# workspace and the container init script. Everything per-user and
# per-task (repository, SSH, branch) is supplied at run time.

ARG BASE_IMAGE=fedora:43
FROM ${BASE_IMAGE}

ENV REPO_ROOT="/workspace" \
    GIT_RESET_MODE="none" \
    LANG="en_US.UTF-8" \
    LC_ALL="en_US.UTF-8" \
    LANGUAGE="en_US:en" \
    USER="dev"

# Tools every task needs. tzdata lets the TZ variable set from the host
# resolve; socat carries the in-container bridges.
# glibc-langpack-en ships en_US.UTF-8; no locale-gen step.
RUN dnf install -y --setopt=install_weak_deps=False \
      ca-certificates curl gnupg2 git glibc-langpack-en openssh-clients \
      socat sudo ripgrep vim tmux tzdata \
    && dnf clean all

# Extra certificate authorities (`build --ca-cert`), such as a company proxy's that inspects
# TLS, join the system trust store; every tool in the image is pointed at that store, so
# Node, pip, uv and Python's requests trust what the system trusts.
COPY ca-certs/ /tmp/terok-ca-certs/
RUN set -eux; \
    for cert in /tmp/terok-ca-certs/*.crt; do \
      [ -e "$cert" ] || continue; \
      cp "$cert" /etc/pki/ca-trust/source/anchors/; \
    done; \
    update-ca-trust; \
    rm -rf /tmp/terok-ca-certs
ENV SSL_CERT_FILE=/etc/pki/tls/certs/ca-bundle.crt \
    NODE_EXTRA_CA_CERTS=/etc/pki/tls/certs/ca-bundle.crt \
    PIP_CERT=/etc/pki/tls/certs/ca-bundle.crt \
    REQUESTS_CA_BUNDLE=/etc/pki/tls/certs/ca-bundle.crt

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
    if [ "$(stat -c '%a' /etc/shadow)" = "0" ]; then \
      printf '%s\n' '#%PAM-1.0' \
        'auth sufficient pam_succeed_if.so ruser = dev' \
        'auth include system-auth' \
        'account sufficient pam_succeed_if.so ruser = dev' \
        'account include system-auth' \
        'password include system-auth' \
        'session include system-auth' > /etc/pam.d/sudo; \
    fi; \
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
