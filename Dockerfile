# tcrp_lab in a container: JupyterLab on the lessons, following jupyter/docker-stacks conventions.
#
#   docker build -t tcrp_lab .
#   docker run --rm -p 8888:8888 tcrp_lab                     # open the URL with the token it prints
#   docker run --rm -p 9001:9001/tcp -p 9002:9002/udp tcrp_lab \
#       python -m tcrp_lab.server --host 0.0.0.0              # only the classroom chat server
#   docker run --rm -p 8866:8866 tcrp_lab tcrp-lab chat       # only the standalone chat page
#   compose.yaml runs the three together (a classroom)
#
# Binder builds this file too (repo2docker passes NB_USER and NB_UID as build args and starts the
# container with `jupyter notebook ...`, which is why the notebook package is installed as well).
# Debian's own Python on debian:bookworm-slim keeps the image small and lets scripts/container-check.sh
# build it without a registry on a faithful debootstrap stand-in for the base image.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="tcrp_lab" \
      org.opencontainers.image.description="JupyterLab on the tcrp_lab lessons: networking and applied cryptography through a real group chat" \
      org.opencontainers.image.licenses="MIT"
# No org.opencontainers.image.source: add it where you publish the image (--label ...source=URL).

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# tshark reads the captures the lessons save (lessons 02 and 07); it never captures, so
# wireshark-common's question (may non-root users capture?) keeps its default, no.
# Debian stable only ships security fixes, and pinned versions vanish from the mirror when one
# lands, so the packages are not pinned: the tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv tini tshark \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv
ENV PATH="${VIRTUAL_ENV}/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    JUPYTER_PORT=8888 \
    SHELL=/bin/bash

# The package with its `lab` extra. Its dependencies come first, read from pyproject.toml, so that
# editing the package reinstalls only the package, not JupyterLab.
COPY pyproject.toml /tmp/tcrp_lab/
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && python3 -c 'import tomllib; p = tomllib.load(open("/tmp/tcrp_lab/pyproject.toml", "rb"))["project"]; \
                   print(*p["dependencies"], *p["optional-dependencies"]["lab"], sep="\n")' \
        > /tmp/tcrp_lab/requirements.txt \
    && pip install --no-cache-dir -r /tmp/tcrp_lab/requirements.txt "notebook>=7,<8"
# The wheel carries the lessons as package data (tcrp-lab lessons / lab), mapped from these folders.
COPY README.md LICENSE /tmp/tcrp_lab/
COPY notebooks/ /tmp/tcrp_lab/notebooks/
COPY docs/ /tmp/tcrp_lab/docs/
COPY tcrp_lab/ /tmp/tcrp_lab/tcrp_lab/
RUN pip install --no-cache-dir --no-deps "/tmp/tcrp_lab[lab]" \
    && pip check \
    && rm -rf /tmp/tcrp_lab

# The non-root user last, so Binder's own NB_USER/NB_UID only rebuild the cheap layers below.
ARG NB_USER=jovyan
ARG NB_UID=1000
ARG NB_GID=100
ENV NB_USER="${NB_USER}" \
    NB_UID="${NB_UID}" \
    NB_GID="${NB_GID}" \
    USER="${NB_USER}" \
    HOME="/home/${NB_USER}"
# ~/.tcrp_lab holds the classroom server's key: made here, owned by the user, so that a volume
# mounted on it (a key, and so a fingerprint, that survives the container) is writable.
RUN useradd --no-log-init --create-home --shell /bin/bash \
        --uid "${NB_UID}" --gid "${NB_GID}" --no-user-group "${NB_USER}" \
    && install -d -m 700 -o "${NB_UID}" -g "${NB_GID}" "${HOME}/.tcrp_lab"

# The lessons in both editions: notebooks/NN_*.ipynb, the student edition a learner opens, and
# notebooks/solutions/, the worked answers one deliberate step away; and what they link to
# (../docs/TCRP.md, ../docs/GLOSSARY.md, ../README.md from the student edition).
WORKDIR ${HOME}
COPY --chown=${NB_UID}:${NB_GID} notebooks/ ${HOME}/notebooks/
COPY --chown=${NB_UID}:${NB_GID} docs/ ${HOME}/docs/
COPY --chown=${NB_UID}:${NB_GID} README.md LICENSE ${HOME}/

# JupyterLab opens on the first lesson of the student edition (the build fails if it is missing),
# with no "Jupyter news?" toast and no update check. The config lives in the environment, so
# `jupyter notebook` (Binder) reads it too.
RUN test -f notebooks/00_start_here.ipynb \
    && mkdir -p "${VIRTUAL_ENV}/etc/jupyter" "${VIRTUAL_ENV}/share/jupyter/lab/settings" \
    && echo '{"LabApp": {"default_url": "/lab/tree/notebooks/00_start_here.ipynb", "news_url": null, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}' \
        > "${VIRTUAL_ENV}/etc/jupyter/jupyter_server_config.json" \
    && echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
        > "${VIRTUAL_ENV}/share/jupyter/lab/settings/overrides.json"

USER ${NB_UID}

# `tcrp-lab chat` listens on every interface of the container (the port is what you publish).
ENV TCRP_CHAT_IP=0.0.0.0

# 8888 JupyterLab; 9001/tcp rooms and 9002/udp chat of a classroom TCRP server; 9003 its status
# endpoint (loopback unless --status-host); 8866 the standalone chat page.
EXPOSE 8888 9001/tcp 9002/udp 9003/tcp 8866

# /api answers without a token once the server is up (the docker-stacks check does the same).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api' % os.environ.get('JUPYTER_PORT', '8888'), timeout=4)"]

# tini reaps the zombies that kernels and terminals leave and forwards signals; Binder's
# `jupyter notebook ...` command goes through it unchanged.
ENTRYPOINT ["tini", "-g", "--"]
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--no-browser"]
