#!/usr/bin/env bash
# Brings up a local three-node shoal cluster (a manager on 127.0.0.1 and
# workers on 127.0.0.2 and .3, each with its own data dir and socket), deploys
# the example stack examples/hello-stack.yml on it as the stack "hello" (web:
# three small HTTP servers, replica N answering on 127.0.0.1:1808N; api: two,
# on 1809N; worker: a shell loop), and shows how to look at it.
# `scripts/quickstart.sh down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${SHOAL_QUICKSTART_DIR:-${TMPDIR:-/tmp}/shoal-quickstart}"
SHOAL="${CARGO_TARGET_DIR:-$PWD/target}/debug/shoal"
NODES=(manager worker1 worker2)

down() {
    for node in "${NODES[@]}"; do
        if [[ -f "$DIR/$node.pid" ]]; then
            kill -TERM "$(cat "$DIR/$node.pid")" 2>/dev/null || true
        fi
    done
    for node in "${NODES[@]}"; do
        if [[ -f "$DIR/$node.pid" ]]; then
            pid="$(cat "$DIR/$node.pid")"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$DIR"
    echo "quickstart cluster stopped and its data removed"
}

wait_for() { # wait_for DESCRIPTION COMMAND...
    local what="$1"; shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "Error: timed out waiting for $what (logs in $DIR)" >&2
    exit 1
}

# One HTTP GET without depending on curl being installed.
fetch() {
    if command -v curl >/dev/null; then
        curl -fsS "http://127.0.0.1:$1/"
    else
        exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && tail -n1 <&3; exec 3<&-
    fi
}
curl_or_tcp() { fetch "$1" >/dev/null; }

up() {
    if [[ -d "$DIR" ]]; then
        echo "a quickstart cluster already exists in $DIR: stopping it first"
        down
    fi
    echo "building shoal…"
    cargo build --quiet --bin shoal
    mkdir -p "$DIR"
    # The example stack runs `shoal example-server` by name: daemons hand
    # their PATH to process tasks, so put the freshly built binary first.
    PATH="$(cd "$(dirname "$SHOAL")" && pwd):$PATH"; export PATH
    for node in "${NODES[@]}"; do
        "$SHOAL" daemon --data-dir "$DIR/$node" --socket "$DIR/$node.sock" --hostname "$node" \
            >"$DIR/$node.log" 2>&1 &
        echo $! >"$DIR/$node.pid"
    done
    for node in "${NODES[@]}"; do
        wait_for "the $node daemon" "$SHOAL" -H "$DIR/$node.sock" info
    done

    "$SHOAL" -H "$DIR/manager.sock" swarm init --listen-addr 127.0.0.1:0 >/dev/null
    addr="$("$SHOAL" -H "$DIR/manager.sock" info --format json | sed -E 's/.*"NodeAddr":"([^"]+)".*/\1/')"
    token="$("$SHOAL" -H "$DIR/manager.sock" swarm join-token -q worker)"
    "$SHOAL" -H "$DIR/worker1.sock" swarm join --token "$token" --advertise-addr 127.0.0.2 "$addr" >/dev/null
    "$SHOAL" -H "$DIR/worker2.sock" swarm join --token "$token" --advertise-addr 127.0.0.3 "$addr" >/dev/null
    ready() { [[ "$("$SHOAL" -H "$DIR/manager.sock" node ls --format json | grep -c '"Status":"Ready"')" == 3 ]]; }
    wait_for "three Ready nodes" ready

    "$SHOAL" -H "$DIR/manager.sock" stack deploy -c examples/hello-stack.yml hello
    converged() {
        local services
        services="$("$SHOAL" -H "$DIR/manager.sock" stack services hello --format json)"
        for want in hello_web:3/3 hello_api:2/2 hello_worker:1/1; do
            grep "\"Name\":\"${want%%:*}\"" <<<"$services" | grep -q "\"Replicas\":\"${want#*:}\"" || return 1
        done
    }
    wait_for "the example stack to run" converged
    wait_for "the example web servers to answer" curl_or_tcp 18081
    wait_for "the example api servers to answer" curl_or_tcp 18091

    echo
    "$SHOAL" -H "$DIR/manager.sock" node ls
    echo
    "$SHOAL" -H "$DIR/manager.sock" stack services hello
    echo
    "$SHOAL" -H "$DIR/manager.sock" stack ps hello
    echo
    for port in 18081 18082 18083 18091 18092; do
        printf '127.0.0.1:%s says: ' "$port"; fetch "$port"
    done
    cat <<EOT

A manager ($addr) and two workers are running the stack "hello"
(examples/hello-stack.yml: web on ports 18081-18083, api on 18091-18092, and a
worker), with data and logs in $DIR. Look at it:
    export SHOAL_HOST=unix://$DIR/manager.sock
    $SHOAL stack ls
    $SHOAL stack services hello
    $SHOAL stack ps hello
    $SHOAL service scale hello_web=5    # replicas 4 and 5 answer on 18084, 18085
    $SHOAL node ls
    curl http://127.0.0.1:18081/
Edit examples/hello-stack.yml and run the deploy again: only the services you
changed are updated.
    $SHOAL stack deploy -c examples/hello-stack.yml hello
Remove the stack, or stop it all (and remove its data):
    $SHOAL stack rm hello
    scripts/quickstart.sh down
EOT
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) echo "Error: unknown action ${1}: use 'up' or 'down'" >&2; exit 2 ;;
esac
