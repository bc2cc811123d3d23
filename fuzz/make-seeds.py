#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/ (committed; rerun to refresh).

join_token: tokens in and out of shape. compose_load: the layout the target
reads (a `.env` section, then Compose files after lines `%%`), with the
fixture files. service_spec: protobuf ServiceSpec messages, encoded by hand
below (field numbers from proto/proto/shoal/v1/objects.proto).
service_flags starts from the few seeds written here; libFuzzer finds its way
through `arbitrary`'s layout quickly.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    path = os.path.join(CORPUS, target)
    os.makedirs(path, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


# ---- join_token -----------------------------------------------------------
DIGEST = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd"  # 50
SECRET = "abcdefghijklmnopqrstuvwxy"  # 25
write("join_token", "valid", f"SHTKN-1-{DIGEST}-{SECRET}")
write("join_token", "valid-spaces", f"  SHTKN-1-{DIGEST}-{SECRET}\n")
write("join_token", "short-secret", f"SHTKN-1-{DIGEST}-abc")
write("join_token", "uppercase", f"SHTKN-1-{DIGEST.upper()}-{SECRET}")
write("join_token", "docker", f"SWMTKN-1-{DIGEST}-{SECRET}")
write("join_token", "version", f"SHTKN-2-{DIGEST}-{SECRET}")
write("join_token", "parts", "SHTKN-1-a-b-c-d")

# ---- compose_load ---------------------------------------------------------
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else None
SEP = "\n%%\n"
if FIXTURES:
    for sub in ("", "real-world"):
        d = os.path.join(FIXTURES, sub)
        for name in sorted(os.listdir(d)):
            if name.endswith((".yml", ".yaml")):
                with open(os.path.join(d, name)) as f:
                    write("compose_load", name, SEP + f.read())
with open(os.path.join(HERE, "..", "examples", "hello-stack.yml")) as f:
    write("compose_load", "hello-stack.yml", SEP + f.read())
write("compose_load", "interpolation", "TAG=1.25\nPORT=8080\nEMPTY=\n" + SEP + """\
services:
  web:
    image: "nginx:${TAG:-latest}"
    ports: ["${PORT}:80", "$${LITERAL}"]
    environment:
      A: ${EMPTY:-default}
      B: ${UNSET-x}
      C: ${TAG:+set}
    command: echo "${TAG?required}"
""")
write("compose_load", "anchors-merge", SEP + """\
x-defaults: &defaults
  restart: always
  deploy: &deploy
    replicas: 2
    resources: {limits: {cpus: "0.5", memory: 256M}}
services:
  web:
    <<: *defaults
    image: nginx
  api:
    <<: [*defaults]
    image: api
    deploy:
      <<: *deploy
      replicas: 3
    depends_on: [web]
""")
write("compose_load", "two-files", SEP + """\
services:
  web:
    image: nginx
    ports: ["80:80"]
    environment: [A=1, B=2]
    secrets: [s]
    volumes: ["data:/data"]
secrets:
  s: {external: true}
volumes:
  data: {}
""" + SEP + """\
services:
  web:
    image: nginx:2
    ports: ["443:443"]
    environment: {B: 3}
    command: ["sh", "-c", "x"]
    healthcheck: {test: ["CMD", "true"], interval: 1m30s}
""")
write("compose_load", "process", SEP + """\
services:
  job:
    x-shoal-runtime: process
    command: sleep 60
    deploy:
      mode: global
      update_config: {parallelism: 2, delay: 10s, order: start-first}
      placement: {constraints: [node.role==worker], preferences: [{spread: node.labels.zone}]}
""")


# ---- service_spec (protobuf) ----------------------------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def s(field, text):
    data = text.encode() if isinstance(text, str) else text
    return key(field, 2) + varint(len(data)) + data


def u(field, n):
    return key(field, 0) + varint(n & 0xFFFFFFFFFFFFFFFF)


def d(field, x):
    return key(field, 1) + struct.pack("<d", x)


def entry(field, k, v):
    return s(field, s(1, k) + s(2, v))


process_task = (
    s(1, "process") + s(3, "sleep") + s(3, "60") + s(5, "A=1")
    + entry(6, "tier", "web") + u(7, 10_000)
    + s(8, s(1, "node.role==worker") + s(2, "spread=node.labels.zone") + u(3, 2))
    + s(9, s(1, u(1, 500_000_000) + u(2, 256 << 20)) + s(2, u(2, 64 << 20)))
    + s(10, u(1, 1) + u(2, 5000))
    + s(11, s(1, "CMD-SHELL") + s(1, "true") + u(2, 30_000) + u(4, 3))
)
update = u(1, 2) + u(2, 1000) + u(3, 2) + u(4, 5000) + d(5, 0.25) + u(6, 1)
write("service_spec", "process", s(1, "web") + entry(2, "a", "b") + u(4, 3)
      + s(5, process_task) + s(6, update) + s(7, update))
write("service_spec", "docker-global", s(1, "db") + u(3, 1)
      + s(5, s(1, "docker") + s(2, "postgres:16") + s(11, s(1, "NONE"))))
write("service_spec", "bad-ratio", s(1, "x") + s(5, s(1, "process") + s(3, "a"))
      + s(6, d(5, 2.0)))
write("service_spec", "bad-constraint", s(1, "x")
      + s(5, s(1, "process") + s(3, "a") + s(8, s(1, "node.labels.zone~=eu"))))
write("service_spec", "negative", s(1, "x")
      + s(5, s(1, "process") + s(3, "a") + s(9, s(1, u(1, -1)))))

# ---- service_flags (arbitrary's layout: Option = a byte whose low bit
# says Some, a String = its bytes up to a length taken from the end) -------
write("service_flags", "empty", b"")
write("service_flags", "some", b"\x01\x01512M\x011.5\x011g\x01any\x015s\x00" * 4)
