#!/usr/bin/env python3
"""Records the request bodies (and the build query string) that the docker CLI and docker-py send, as
seeds for the `api_request` fuzz target: `capture_api_seeds.py corpus/api_request`.

It serves a stand-in daemon on a unix socket that answers just enough for each command to send its
request, runs the commands below against it, and writes each recorded body prefixed with the target's
mode byte (see fuzz_targets/api_request.rs). Needs the `docker` CLI and the `docker` Python package.
"""

import json
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler

MODES = [
    ("/containers/create", 0),
    ("/update", 1),
    ("/exec", 2),  # POST /containers/{id}/exec
    ("/start", 3),  # POST /exec/{id}/start
    ("/networks/create", 4),
    ("/connect", 5),
    ("/volumes/create", 6),
    ("/build", 7),
]

LABELS = ["container-create", "container-update", "exec-create", "exec-start", "network-create",
          "network-connect", "volume-create", "build-query"]

recorded = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Api-Version", "1.50")
        self.send_header("Ostype", "linux")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return out
                out += chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_HEAD(self):
        self.reply(200, None)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            self.send_response(200)
            self.send_header("Api-Version", "1.50")
            self.send_header("Ostype", "linux")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        elif "/exec/" in path:
            self.reply(200, {"ID": "e1", "Running": False, "ExitCode": 0, "Pid": 1})
        elif path.endswith("/json") and "/containers/" in path:
            self.reply(200, {"Id": "c" * 64, "State": {"Running": True, "Status": "running"},
                             "Config": {"Tty": False}, "HostConfig": {}})
        elif path.endswith("/version"):
            self.reply(200, {"ApiVersion": "1.50", "Version": "28.2.2", "MinAPIVersion": "1.24"})
        else:
            self.reply(200, {})

    def do_POST(self):
        body = self.read_body()
        path, _, query = self.path.partition("?")
        for suffix, mode in MODES:
            if path.endswith(suffix):
                recorded.append((mode, query.encode() if mode == 7 else body, path))
                break
        if path.endswith("/containers/create"):
            self.reply(201, {"Id": "c" * 64, "Warnings": []})
        elif path.endswith("/exec"):
            self.reply(201, {"Id": "e1"})
        elif path.endswith("/networks/create"):
            self.reply(201, {"Id": "n" * 64, "Warning": ""})
        elif path.endswith("/volumes/create"):
            self.reply(201, {"Name": "vol1", "Driver": "local", "Mountpoint": "/v", "Labels": {},
                             "Scope": "local", "Options": {}})
        elif path.endswith("/update"):
            self.reply(200, {"Warnings": []})
        elif path.endswith("/build"):
            self.reply(200, {"stream": "Successfully built 0123456789ab\n"})
        else:
            self.reply(200, None)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    sock = os.path.join(tmp, "docker.sock")
    srv = Server(sock, Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_BUILDKIT="0")
    ctx = os.path.join(tmp, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nARG V=1\nRUN echo $V\n")
    with open(os.path.join(ctx, "profile.json"), "w") as f:
        f.write('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], '
                '"syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}')
    cli = [
        "create busybox",
        "create --name web -p 127.0.0.1:8080:80/tcp -p 53:53/udp -e A=1 --env-file /dev/null -l k=v "
        "-v /srv:/srv:ro,rslave -v data:/data --mount type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770 "
        "--mount type=bind,source=/tmp,target=/b,readonly,bind-recursive=readonly,bind-propagation=rprivate "
        "--memory 64m --memory-swap 128m --cpus 1.5 --cpu-shares 512 --pids-limit 100 --ulimit nofile=1024:2048 "
        "--restart on-failure:3 --log-driver json-file --log-opt max-size=10m --log-opt max-file=3 "
        "--health-cmd 'true' --health-interval 5s --health-retries 2 --cap-add NET_ADMIN --cap-drop MKNOD "
        "--security-opt no-new-privileges --sysctl net.ipv4.ip_forward=1 --device /dev/null:/dev/n:rw "
        "--dns 1.1.1.1 --add-host h:10.0.0.1 --hostname h --user 1000:1000 -w /srv --entrypoint sh "
        "--stop-signal SIGINT --stop-timeout 5 --init --tmpfs /run:size=1m -it busybox -c 'echo hi'",
        "create --network n1 --network-alias a --ip 10.5.0.9 --mac-address 02:42:ac:11:00:02 --rm busybox",
        "create --network host --pid host --ipc host --uts host --privileged --read-only busybox",
        "create --security-opt seccomp=unconfined --security-opt apparmor=unconfined --userns host busybox",
        "create --security-opt seccomp=profile.json busybox",
        "update --memory 128m --memory-swap 256m --cpus 2 --restart always c1",
        "update --cpu-shares 100 --pids-limit 50 --blkio-weight 300 --cpuset-cpus 0 c1",
        "exec -d c1 true",
        "exec -d -e X=1 -u root -w /tmp --privileged c1 sh -c 'echo hi'",
        "network create n1",
        "network create --driver bridge --subnet 10.5.0.0/16 --ip-range 10.5.1.0/24 --gateway 10.5.0.1 "
        "--aux-address host1=10.5.0.5 --internal --attachable -o com.docker.network.bridge.name=br5 "
        "--label a=b --ipv6 --subnet fd00:5::/64 n2",
        "network connect n1 c1",
        "network connect --ip 10.5.0.7 --alias db --alias db2 --link other:o --driver-opt k=v n1 c1",
        "volume create",
        "volume create --name v1 --label a=b",
        "volume create -d local -o type=tmpfs -o device=tmpfs -o o=size=100m,uid=1000 v2",
        "build -q .",
        "build -t a:1 -t b:2 --build-arg V=2 --build-arg EMPTY --label l=1 --target t --no-cache --pull "
        "--network host --add-host h:10.0.0.1 --memory 64m --cpu-shares 10 --shm-size 1m --cache-from a:1 "
        "--platform linux/amd64 -f Dockerfile .",
    ]
    for cmd in cli:
        subprocess.run("docker " + cmd, shell=True, env=env, cwd=ctx, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    import docker  # docker-py
    from docker.types import IPAMConfig, IPAMPool, LogConfig, Mount, Ulimit

    c = docker.DockerClient(base_url="unix://" + sock, version="1.43")
    api = c.api
    api.create_container("busybox", command=["true"], environment={"A": "1"}, labels={"x": "y"},
                         ports=[80, (53, "udp")], volumes=["/data"], healthcheck={"test": ["CMD", "true"]},
                         host_config=api.create_host_config(
                             binds={"/srv": {"bind": "/srv", "mode": "ro"}}, port_bindings={80: 8080},
                             mem_limit="64m", restart_policy={"Name": "unless-stopped"},
                             log_config=LogConfig(type="json-file", config={"max-size": "1m"}),
                             ulimits=[Ulimit(name="nofile", soft=10, hard=20)], cap_add=["SYS_ADMIN"],
                             mounts=[Mount("/m", "vol", type="volume", labels={"a": "b"})],
                             tmpfs={"/run": "size=1m"}, sysctls={"net.core.somaxconn": "1024"}))
    api.update_container("c1", mem_limit="32m", memswap_limit="64m", restart_policy={"Name": "always"})
    ex = api.exec_create("c1", ["sh", "-c", "true"], environment=["A=1"], workdir="/", user="root",
                         detach_keys="ctrl-p,ctrl-q")
    api.exec_start(ex["Id"], detach=True)
    api.create_network("pynet", driver="bridge", internal=True, labels={"a": "b"}, options={"o": "v"},
                       ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="10.9.0.0/16", gateway="10.9.0.1",
                                                              iprange="10.9.1.0/24",
                                                              aux_addresses={"r": "10.9.0.2"})]),
                       check_duplicate=True)
    api.connect_container_to_network("c1", "pynet", aliases=["a"], links=[("o", "p")],
                                     ipv4_address="10.9.0.9", link_local_ips=["169.254.1.1"])
    api.create_volume("pyvol", driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs"},
                      labels={"a": "b"})
    srv.shutdown()
    names = {}
    for mode, body, path in recorded:
        n = names.get(mode, 0)
        names[mode] = n + 1
        name = os.path.join(out, "seed-%s-%d" % (LABELS[mode], n))
        with open(name, "wb") as f:
            f.write(bytes([mode]) + body)
    print("recorded", len(recorded), "requests", file=sys.stderr)


if __name__ == "__main__":
    main()
