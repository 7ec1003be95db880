#!/usr/bin/env bash
# The container check: build the Dockerfile, run the image, and prove it works the way users meet it.
#
#   1. `run IMAGE` (the default command): /api/status answers 200, / opens the first lesson of the
#      student edition, the news feed and update check are off, both editions (notebooks/ and
#      notebooks/solutions/) and the docs they link to are there, a kernel starts, the HEALTHCHECK
#      passes and the user is jovyan (uid 1000), not root;
#   2. `python -m tcrp_lab.server --host 0.0.0.0 --tcp-port 9001 --udp-port 9002` started inside
#      that container is reached from the host through the published 9001/tcp and 9002/udp:
#      two clients chat both ways (scripts/chat_probe.py);
#   3. the same with the image running only the classroom server (the README's command);
#   4. Binder's way: built with other NB_USER/NB_UID build args and started as
#      `jupyter notebook --ip=0.0.0.0 --port=8888`, it answers /api/status as that user;
#   5. compose.yaml with podman-compose (PyPI's, installed in a throwaway venv; `docker compose` with
#      Docker): the server, lab and chat services start on the image built above, two clients in the
#      lab container chat through the server container by its service name, the status endpoint
#      answers them from the lab container with its token (and refuses without), the key is on its
#      volume, and the chat page answers on the host.
#
#   bash scripts/container-check.sh                          # podman (the default)
#   CONTAINER_ENGINE=docker bash scripts/container-check.sh  # Docker and the real base image
#
# podman mode needs root: it installs podman, runc and debootstrap with apt when missing and, as
# no image registry is reachable, stands in for the base image with a debootstrap of the same
# Debian release (made once, then reused while `podman image exists` finds it). The host probes
# run with $PYTHON (default .venv/bin/python, which needs tcrp_lab installed). Every container this
# script starts is removed on exit; the images stay, as the build cache of the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${CONTAINER_ENGINE:-podman}
IMAGE=localhost/tcrp_lab:check
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
BASE=$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)
START=$(date +%s)
WORK=$(mktemp -d)
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
CONTAINERS=()
VOLUME=""

log() { printf '[container-check %4ss] %s\n' "$(($(date +%s) - START))" "$*"; }

fail() {
    log "FAIL: $*"
    for c in "${CONTAINERS[@]}"; do
        echo "--- last lines of container $c:"
        "$ENGINE" logs --tail 30 "$c" 2>&1 || true
    done
    exit 1
}

cleanup() {
    for c in "${CONTAINERS[@]}"; do "$ENGINE" rm -f "$c" >/dev/null 2>&1 || true; done
    [ -z "$VOLUME" ] || "$ENGINE" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that Ctrl-C or a CI timeout still removes the containers

free_ports() {  # KIND...: a free 127.0.0.1 port for each of tcp/udp
    "$PYTHON" - "$@" <<'EOF'
import socket, sys
kinds = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
socks = [socket.socket(socket.AF_INET, kinds[kind]) for kind in sys.argv[1:]]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
}

run_container() {  # NAME ARGS... : start a detached container and remember it for cleanup
    local name=$1
    shift
    CONTAINERS+=("$name")
    "$ENGINE" run -d --name "$name" "$@" >"$WORK/run-$name.log" 2>&1 || {
        cat "$WORK/run-$name.log"
        fail "could not start container $name"
    }
}

setup_podman() {
    [ "$(id -u)" -eq 0 ] || fail "podman mode runs rootful podman and apt: run it as root (sudo make test-container)"
    local need=() cmd
    for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
    # CNI's dnsname plugin: containers of a compose project find each other by service name.
    [ -x /usr/lib/cni/dnsname ] || need+=(golang-github-containernetworking-plugin-dnsname)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]} with apt"
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            --no-install-recommends "${need[@]}" >"$WORK/apt.log" 2>&1 || {
            tail -20 "$WORK/apt.log"
            fail "apt-get install ${need[*]} failed"
        }
    fi
    # crun fails on this machine's cgroups, and the default ulimits are too low for pip and Jupyter;
    # CNI, as podman 4.3 picks by default here, named so that installing netavark changes nothing.
    cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"

[network]
network_backend = "cni"
EOF
    export CONTAINERS_CONF="$WORK/containers.conf"
}

stand_in_base() {
    # A debootstrap --variant=minbase of bookworm is what debian:bookworm-slim is built from
    # (debuerreotype), so a Dockerfile that works on one works on the other.
    [ "$BASE" = "debian:bookworm-slim" ] ||
        fail "the Dockerfile is FROM $BASE, for which this script has no faithful stand-in (it makes debian:bookworm-slim)"
    local ref=docker.io/library/$BASE rootfs=$WORK/rootfs
    if podman image exists "$ref"; then
        log "base image $ref: present"
        return
    fi
    log "base image $ref: making a stand-in with debootstrap --variant=minbase bookworm (once)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || {
        tail -20 "$WORK/debootstrap.log"
        fail "debootstrap failed"
    }
    # Like the official image: deb822 sources with updates and security, no package caches.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$ref" >/dev/null
    rm -rf "$rootfs"
}

build() {  # TAG [BUILD ARGS...]
    local tag=$1 extra=()
    shift
    if [ "$ENGINE" = podman ]; then
        # --format docker keeps the HEALTHCHECK (OCI images drop it). pip inside the build reaches
        # PyPI through this machine's TLS-inspecting proxy, whose CA only the host bundle has: a
        # pip.conf pointing at it is mounted for the build only (an empty /etc/xdg/pip is left).
        mkdir -p "$WORK/pip"
        cp /etc/ssl/certs/ca-certificates.crt "$WORK/pip/host-ca.crt"
        printf '[global]\ncert = /etc/xdg/pip/host-ca.crt\n' >"$WORK/pip/pip.conf"
        extra=(--pull=never --format docker -v "$WORK/pip:/etc/xdg/pip:ro")
    fi
    "$ENGINE" build "${extra[@]}" "$@" -t "$tag" . >"$WORK/build.log" 2>&1 || {
        tail -40 "$WORK/build.log"
        fail "$ENGINE build failed"
    }
}

wait_healthy() {  # NAME: the image's own HEALTHCHECK passes
    local name=$1 status
    if [ "$ENGINE" = podman ]; then
        podman healthcheck run "$name" >/dev/null 2>&1 || fail "HEALTHCHECK of $name does not pass"
        return
    fi
    for _ in $(seq 60); do  # Docker runs the check itself every 10 s: poll its verdict, 60 s at most
        status=$(docker inspect -f '{{.State.Health.Status}}' "$name")
        [ "$status" = healthy ] && return
        [ "$status" = unhealthy ] && fail "HEALTHCHECK of $name reports unhealthy"
        sleep 1
    done
    fail "HEALTHCHECK of $name still '$status' after 60 s"
}

chat_server_cmd=(python -m tcrp_lab.server --host 0.0.0.0 --tcp-port 9001 --udp-port 9002)

log "engine $ENGINE, image $IMAGE from $BASE, host python $PYTHON"
"$PYTHON" -c 'import tcrp_lab' 2>/dev/null || fail "$PYTHON cannot import tcrp_lab (make install, or set PYTHON)"
if [ "$ENGINE" = podman ]; then
    setup_podman
    stand_in_base
fi

log "building the image"
build "$IMAGE"
log "built $IMAGE"

# 1. JupyterLab, as `docker run -p 8888:8888 IMAGE` starts it
read -r lab_port chat_tcp chat_udp <<<"$(free_ports tcp tcp udp)"
lab=tcrp-check-$$-lab
run_container "$lab" -e JUPYTER_TOKEN="$TOKEN" -p "127.0.0.1:$lab_port:8888" \
    -p "127.0.0.1:$chat_tcp:9001/tcp" -p "127.0.0.1:$chat_udp:9002/udp" "$IMAGE"
"$PYTHON" scripts/lab_probe.py --url "http://127.0.0.1:$lab_port" --token "$TOKEN" || fail "JupyterLab check"
wait_healthy "$lab"
# a lesson's first cell, run by the image's own kernel (nbclient, as the notebook UI would)
"$ENGINE" exec "$lab" python -c '
import nbclient, nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import tcrp_lab, ipywidgets; print(tcrp_lab.__version__)")])
nbclient.NotebookClient(nb, kernel_name="python3", timeout=60).execute()
print("kernel ran a cell: tcrp_lab", nb.cells[0].outputs[0]["text"].strip())' || fail "the python3 kernel cannot import tcrp_lab"
user=$("$ENGINE" exec "$lab" id -u):$("$ENGINE" exec "$lab" id -un)
[ "$user" = "1000:jovyan" ] || fail "JupyterLab runs as $user, not 1000:jovyan"
log "JupyterLab: /api/status 200, healthy, running as $user"

# 2. a classroom server started inside the JupyterLab container
"$ENGINE" exec -d "$lab" bash -c 'exec "$@" >/tmp/chat-server.log 2>&1' - "${chat_server_cmd[@]}" >/dev/null
"$PYTHON" scripts/chat_probe.py --tcp-port "$chat_tcp" --udp-port "$chat_udp" || {
    "$ENGINE" exec "$lab" cat /tmp/chat-server.log
    fail "chat with a server started inside the JupyterLab container"
}

# 3. the image as only a classroom server, its key on a volume (the README's command)
read -r srv_tcp srv_udp <<<"$(free_ports tcp udp)"
server=tcrp-check-$$-server
VOLUME=tcrp-check-$$-key
run_container "$server" -v "$VOLUME:/home/jovyan/.tcrp_lab" \
    -p "127.0.0.1:$srv_tcp:9001/tcp" -p "127.0.0.1:$srv_udp:9002/udp" "$IMAGE" "${chat_server_cmd[@]}"
"$PYTHON" scripts/chat_probe.py --tcp-port "$srv_tcp" --udp-port "$srv_udp" || fail "chat with the server-only container"
"$ENGINE" exec "$server" test -s /home/jovyan/.tcrp_lab/server_key.pem || fail "the server key is not on its volume"

# 4. Binder: its own NB_USER/NB_UID, then `jupyter notebook <its arguments>`
log "building with Binder's build args (NB_USER=binder NB_UID=1001)"
build "$IMAGE-binder" --build-arg NB_USER=binder --build-arg NB_UID=1001
binder_port=$(free_ports tcp)
binder=tcrp-check-$$-binder
run_container "$binder" -e JUPYTER_TOKEN="$TOKEN" -p "127.0.0.1:$binder_port:8888" "$IMAGE-binder" \
    jupyter notebook --ip=0.0.0.0 --port=8888
"$PYTHON" scripts/lab_probe.py --url "http://127.0.0.1:$binder_port" --token "$TOKEN" --minimal || fail "Binder launch"
user=$("$ENGINE" exec "$binder" id -u):$("$ENGINE" exec "$binder" id -un)
[ "$user" = "1001:binder" ] || fail "Binder's build args are not honoured: runs as $user, not 1001:binder"
"$ENGINE" exec "$binder" test -w /home/binder/notebooks/00_start_here.ipynb || fail "Binder's user cannot write its notebooks"
log "Binder launch: /api/status 200 as $user"

# 5. the classroom: compose.yaml's three services on the image built above
compose_check() {
    local project=tcrp-check-$$ compose=() status_token admin_token
    if [ "$ENGINE" = podman ]; then
        if ! command -v podman-compose >/dev/null; then
            log "installing podman-compose (PyPI) in a throwaway venv"
            python3 -m venv "$WORK/compose-venv" && "$WORK/compose-venv/bin/pip" install -q podman-compose >"$WORK/pip-compose.log" 2>&1 || {
                tail -20 "$WORK/pip-compose.log"
                fail "pip install podman-compose failed"
            }
            compose=("$WORK/compose-venv/bin/podman-compose")
        else
            compose=(podman-compose)
        fi
    else
        compose=(docker compose)
    fi
    compose+=(-p "$project" -f compose.yaml)
    status_token=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    admin_token=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    read -r c_tcp c_udp c_status c_lab c_chat <<<"$(free_ports tcp udp tcp tcp tcp)"
    export TCRP_IMAGE=$IMAGE TCRP_TCP_PORT=$c_tcp TCRP_UDP_PORT=$c_udp TCRP_STATUS_PORT=$c_status \
        TCRP_LAB_PORT=$c_lab TCRP_CHAT_PORT=$c_chat JUPYTER_TOKEN=$TOKEN \
        TCRP_STATUS_TOKEN=$status_token TCRP_ADMIN_TOKEN=$admin_token
    compose_down() { "${compose[@]}" down -v >/dev/null 2>&1 || true; }
    trap 'compose_down; cleanup' EXIT
    log "compose: ${compose[*]} up -d (server, lab, chat)"
    "${compose[@]}" up -d >"$WORK/compose-up.log" 2>&1 || { tail -40 "$WORK/compose-up.log"; fail "compose up failed"; }
    local lab_c server_c
    lab_c=$("$ENGINE" ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=lab" | head -1)
    server_c=$("$ENGINE" ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=server" | head -1)
    [ -n "$lab_c" ] && [ -n "$server_c" ] || { "${compose[@]}" ps; fail "compose: the lab or server container is not running"; }
    "$PYTHON" scripts/lab_probe.py --url "http://127.0.0.1:$c_lab" --token "$TOKEN" --minimal || fail "compose: JupyterLab"
    # Two members in the lab container, the server reached by its service name; bounded waits throughout.
    "$ENGINE" exec -e T="$status_token" "$lab_c" python -c '
import json, os, sys, time, urllib.error, urllib.request
from tcrp_lab import ChatClient
port = int(sys.argv[1])
deadline = time.monotonic() + 60
while True:   # the server container may still be starting
    try:
        alice = ChatClient.create_room(("server", port), "compose", username="alice", password="pw")
        break
    except Exception as exc:
        if time.monotonic() > deadline:
            raise SystemExit(f"cannot reach server:{port}: {exc}")
        time.sleep(0.5)
bob = ChatClient.join_room(("server", port), "compose", username="bob", password="pw")
alice.send("hello bob, through the server container")
bob.wait_for_messages(1, timeout=15)
bob.send("hello alice")
alice.wait_for_messages(2, timeout=15)   # hers, then the one from bob
assert [m.text for m in bob.messages if not m.mine] == ["hello bob, through the server container"], bob.messages
assert [m.text for m in alice.messages if not m.mine] == ["hello alice"], alice.messages
url = "http://server:9003/status"
try:
    urllib.request.urlopen(url, timeout=5)
    raise SystemExit("the status endpoint answered without a token")
except urllib.error.HTTPError as exc:
    assert exc.code == 401, exc.code
status = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["T"]}), timeout=5))
assert {m["name"] for m in status["rooms"][0]["members"]} == {"alice", "bob"}, status["rooms"]
print("compose: alice and bob chatted through server:%d; the status endpoint lists them" % port)
alice.close(); bob.close()
' "$c_tcp" 2>&1 || fail "compose: chat from the lab container through the server container"
    "$ENGINE" exec "$server_c" test -s /home/jovyan/.tcrp_lab/server_key.pem || fail "compose: the server key is not on its volume"
    "$PYTHON" - "$c_chat" <<'EOF' || fail "compose: the chat page does not answer on the host"
import sys, time, urllib.request
url, deadline = f"http://127.0.0.1:{sys.argv[1]}/", time.monotonic() + 60
while True:   # Voilà starts in a few seconds
    try:
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url}: {exc}")
        time.sleep(0.5)
assert "from tcrp_lab.chatpage import" not in page, "the chat page shows its code"
print("compose: the chat page answers on", url)
EOF
    log "compose: three services up, chat through the server container, status endpoint, chat page on the host"
    compose_down
}
compose_check

log "OK: built, served JupyterLab, chatted through the container, launched as Binder does, and ran compose.yaml"
