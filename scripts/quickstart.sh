#!/usr/bin/env bash
# Brings up a local three-node shoal cluster and deploys an example stack on
# it as the stack "hello"; `scripts/quickstart.sh down` stops it all.
#
# As root (with `ip netns`), each node is its own network namespace on a
# bridge of the script's (10.78.0.1-3, the machine itself 10.78.0.254), so
# the stack uses what real machines do: overlay networks, the routing mesh
# (web published on port 8080 of every node) and a volume —
# examples/hello-stack.yml. Otherwise (or with SHOAL_QUICKSTART_MODE=loopback)
# the nodes share the machine's network on 127.0.0.1-3 and the stack's
# processes bind their own ports on it (web: replica N on 127.0.0.1:1808N;
# api on 1809N) — examples/hello-host-stack.yml.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${SHOAL_QUICKSTART_DIR:-${TMPDIR:-/tmp}/shoal-quickstart}"
SHOAL="${CARGO_TARGET_DIR:-$PWD/target}/debug/shoal"
NODES=(manager worker1 worker2)
# The netns mode's names: namespaces, the bridge, its address.
NS_PREFIX=shoal-qs
BRIDGE=shoalqs0
SUBNET=10.78.0
MODE_FILE_NAME=mode

mode() {
    if [[ -f "$DIR/$MODE_FILE_NAME" ]]; then cat "$DIR/$MODE_FILE_NAME"; return; fi
    if [[ -n "${SHOAL_QUICKSTART_MODE:-}" ]]; then echo "$SHOAL_QUICKSTART_MODE"; return; fi
    if [[ "$(id -u)" == 0 ]] && ip netns list >/dev/null 2>&1; then echo netns; else echo loopback; fi
}

forward_rule=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT)

net_up() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET.254/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Docker sets FORWARD's policy to DROP, and bridged frames pass FORWARD.
    if command -v iptables >/dev/null; then iptables -I "${forward_rule[@]}"; fi
    local i=1
    for node in "${NODES[@]}"; do
        local ns="$NS_PREFIX-$i"
        ip netns add "$ns"
        ip link add "shoalqsv$i" type veth peer name "shoalqsi$i"
        ip link set "shoalqsv$i" master "$BRIDGE" up
        ip link set "shoalqsi$i" netns "$ns"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "shoalqsi$i" name eth0
        ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$SUBNET.254"
        i=$((i + 1))
    done
}

net_down() {
    for i in 1 2 3; do ip netns del "$NS_PREFIX-$i" 2>/dev/null || true; done
    if command -v iptables >/dev/null; then iptables -D "${forward_rule[@]}" 2>/dev/null || true; fi
    ip link del "$BRIDGE" 2>/dev/null || true
}

down() {
    local mode
    mode="$(mode)"
    if [[ "$mode" == netns && -S "$DIR/manager.sock" ]]; then
        # Leaving removes what each node made: task namespaces, the mesh's
        # sandbox and rules, overlay devices.
        "$SHOAL" -H "$DIR/manager.sock" stack rm hello >/dev/null 2>&1 || true
        for node in worker1 worker2 manager; do
            "$SHOAL" -H "$DIR/$node.sock" swarm leave --force >/dev/null 2>&1 || true
        done
    fi
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
    if [[ "$mode" == netns ]]; then net_down; fi
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

# One HTTP GET (fetch [HOST] PORT) without depending on curl being installed.
fetch() {
    local host=127.0.0.1
    if [[ $# == 2 ]]; then host="$1"; shift; fi
    if command -v curl >/dev/null; then
        curl -fsS --max-time 2 "http://$host:$1/"
    else
        exec 3<>"/dev/tcp/$host/$1" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && tail -n1 <&3; exec 3<&-
    fi
}
curl_or_tcp() { fetch "$@" >/dev/null; }

start_daemons() { # start_daemons MODE
    local i=1
    for node in "${NODES[@]}"; do
        local wrap=()
        if [[ "$1" == netns ]]; then wrap=(ip netns exec "$NS_PREFIX-$i"); fi
        "${wrap[@]}" "$SHOAL" daemon --data-dir "$DIR/$node" --socket "$DIR/$node.sock" --hostname "$node" \
            >"$DIR/$node.log" 2>&1 &
        echo $! >"$DIR/$node.pid"
        i=$((i + 1))
    done
    for node in "${NODES[@]}"; do
        wait_for "the $node daemon" "$SHOAL" -H "$DIR/$node.sock" info
    done
}

form_swarm() { # form_swarm MODE
    local token
    if [[ "$1" == netns ]]; then
        "$SHOAL" -H "$DIR/manager.sock" swarm init --listen-addr "$SUBNET.1:2377" >/dev/null
        addr="$SUBNET.1:2377"
    else
        "$SHOAL" -H "$DIR/manager.sock" swarm init --listen-addr 127.0.0.1:0 >/dev/null
        addr="$("$SHOAL" -H "$DIR/manager.sock" info --format json | sed -E 's/.*"NodeAddr":"([^"]+)".*/\1/')"
    fi
    token="$("$SHOAL" -H "$DIR/manager.sock" swarm join-token -q worker)"
    local i=2
    for node in worker1 worker2; do
        local advertise="127.0.0.$i"
        if [[ "$1" == netns ]]; then advertise="$SUBNET.$i"; fi
        "$SHOAL" -H "$DIR/$node.sock" swarm join --token "$token" --advertise-addr "$advertise" "$addr" >/dev/null
        i=$((i + 1))
    done
    ready() { [[ "$("$SHOAL" -H "$DIR/manager.sock" node ls --format json | grep -c '"Status":"Ready"')" == 3 ]]; }
    wait_for "three Ready nodes" ready
}

converged() { # converged NAME:N/N...
    local services
    services="$("$SHOAL" -H "$DIR/manager.sock" stack services hello --format json)"
    for want in "$@"; do
        grep "\"Name\":\"${want%%:*}\"" <<<"$services" | grep -q "\"Replicas\":\"${want#*:}\"" || return 1
    done
}

show() {
    echo
    "$SHOAL" -H "$DIR/manager.sock" node ls
    echo
    "$SHOAL" -H "$DIR/manager.sock" stack services hello
    echo
    "$SHOAL" -H "$DIR/manager.sock" stack ps hello
    echo
}

up() {
    if [[ -d "$DIR" ]]; then
        echo "a quickstart cluster already exists in $DIR: stopping it first"
        down
    fi
    local mode
    mode="$(mode)"
    echo "building shoal…"
    cargo build --quiet --bin shoal
    mkdir -p "$DIR"
    echo "$mode" >"$DIR/$MODE_FILE_NAME"
    # The example stacks run `shoal example-server` by name: daemons hand
    # their PATH to process tasks, so put the freshly built binary first.
    PATH="$(cd "$(dirname "$SHOAL")" && pwd):$PATH"; export PATH
    if [[ "$mode" == netns ]]; then net_up; fi
    start_daemons "$mode"
    form_swarm "$mode"
    if [[ "$mode" == netns ]]; then up_netns; else up_loopback; fi
}

up_netns() {
    "$SHOAL" -H "$DIR/manager.sock" stack deploy -c examples/hello-stack.yml hello
    wait_for "the example stack to run" converged hello_web:3/3 hello_api:1/1 hello_worker:1/1
    for i in 1 2 3; do
        wait_for "web on $SUBNET.$i:8080" curl_or_tcp "$SUBNET.$i" 8080
    done
    show
    for i in 1 2 3; do
        printf '%s:8080 says: ' "$SUBNET.$i"; fetch "$SUBNET.$i" 8080
    done
    cat <<EOT

Three nodes, each a network namespace (manager $SUBNET.1, workers $SUBNET.2
and .3), are running the stack "hello" (examples/hello-stack.yml), with data
and logs in $DIR. web is published on port 8080 of every node through the
routing mesh: any node answers, from any replica, and the replica sees your
address ($SUBNET.254), not a node's. worker asks api by name over the
internal network back; api counts its requests in the volume data.
    export SHOAL_HOST=unix://$DIR/manager.sock
    curl http://$SUBNET.2:8080/
    $SHOAL stack services hello
    $SHOAL stack ps hello
    $SHOAL service logs hello_worker        # api's answers, asked by name
    $SHOAL service scale hello_web=1        # every node still answers
    $SHOAL network ls
    $SHOAL node ls
Edit examples/hello-stack.yml and run the deploy again: only the services you
changed are updated, one replica at a time.
    $SHOAL stack deploy -c examples/hello-stack.yml hello
Remove the stack, or stop it all (daemons, namespaces, bridge and data):
    $SHOAL stack rm hello
    scripts/quickstart.sh down
EOT
}

up_loopback() {
    "$SHOAL" -H "$DIR/manager.sock" stack deploy -c examples/hello-host-stack.yml hello
    wait_for "the example stack to run" converged hello_web:3/3 hello_api:2/2 hello_worker:1/1
    wait_for "the example web servers to answer" curl_or_tcp 18081
    wait_for "the example api servers to answer" curl_or_tcp 18091
    show
    for port in 18081 18082 18083 18091 18092; do
        printf '127.0.0.1:%s says: ' "$port"; fetch "$port"
    done
    cat <<EOT

A manager ($addr) and two workers are running the stack "hello"
(examples/hello-host-stack.yml: web on ports 18081-18083, api on 18091-18092,
and a worker), with data and logs in $DIR. They share this machine's network
(as root the quick start makes each node a network namespace, with overlay
networks and the routing mesh). Look at it:
    export SHOAL_HOST=unix://$DIR/manager.sock
    $SHOAL stack ls
    $SHOAL stack services hello
    $SHOAL stack ps hello
    $SHOAL service scale hello_web=5    # replicas 4 and 5 answer on 18084, 18085
    $SHOAL node ls
    curl http://127.0.0.1:18081/
Edit examples/hello-host-stack.yml and run the deploy again: only the
services you changed are updated.
    $SHOAL stack deploy -c examples/hello-host-stack.yml hello
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
