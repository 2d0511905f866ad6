"""docker-py against berth daemon: exec_run (plain, demux, stream, stdin socket, tty, user/env/workdir) and
the low-level exec_create / exec_start / exec_inspect.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import socket
import time

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

c = client.containers.run("busybox", "sleep 1000", detach=True, name="pyexec")

r = c.exec_run("echo hello")
assert r.exit_code == 0 and r.output == b"hello\n", r

r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 5"], demux=True)
assert r.exit_code == 5, r
assert r.output == (b"out\n", b"err\n"), r.output

r = c.exec_run("sh -c 'echo $A $(id -u) $(pwd)'", environment={"A": "x"}, user="1000", workdir="/tmp")
assert r.output == b"x 1000 /tmp\n", r.output

r = c.exec_run("no-such-program")
assert r.exit_code == 127, r
assert b"executable file not found" in r.output, r.output

r = c.exec_run("tty", tty=True)
assert r.output.startswith(b"/dev/pts/"), r.output

r = c.exec_run("sh -c 'for i in 1 2 3; do echo $i; done'", stream=True)
assert b"".join(r.output) == b"1\n2\n3\n"

# Low level: create, start with a socket, feed stdin, read the multiplexed stream, inspect the exit code.
api = client.api
e = api.exec_create(c.id, "sh -c 'read x; echo got $x; exit 2'", stdin=True)
sock = api.exec_start(e["Id"], socket=True)
raw = sock._sock
raw.sendall(b"ping\n")
raw.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = raw.recv(4096)
    if not chunk:
        break
    data += chunk
sock.close()
assert data[0] == 1 and data[8:] == b"got ping\n", data
for _ in range(50):
    info = api.exec_inspect(e["Id"])
    if not info["Running"]:
        break
    time.sleep(0.05)
assert info["ExitCode"] == 2, info
assert info["ContainerID"] == c.id, info
assert info["ProcessConfig"]["entrypoint"] == "sh", info

# Stdin far larger than a pipe holds, through the socket: all of it arrives, and the socket's half-close
# is the process's EOF (sha256sum prints only then).
import hashlib
import threading

payload = bytes(range(256)) * (16 * 1024 * 1024 // 256) + b"tail"
e = api.exec_create(c.id, "sha256sum", stdin=True)
raw = api.exec_start(e["Id"], socket=True)._sock
raw.settimeout(120)


def feed():
    raw.sendall(payload)
    raw.shutdown(socket.SHUT_WR)


feeder = threading.Thread(target=feed)
feeder.start()
data = b""
while True:
    chunk = raw.recv(65536)
    if not chunk:
        break
    data += chunk
feeder.join()
raw.close()
assert data[8:] == hashlib.sha256(payload).hexdigest().encode() + b"  -\n", data

# Detached.
e = api.exec_create(c.id, "sh -c 'echo detached > /tmp/d'")
assert api.exec_start(e["Id"], detach=True) in ("", b"")
for _ in range(50):
    if not api.exec_inspect(e["Id"])["Running"]:
        break
    time.sleep(0.05)
assert c.exec_run("cat /tmp/d").output == b"detached\n"

try:
    api.exec_inspect("0123456789ab")
    raise AssertionError("unknown exec found")
except docker.errors.NotFound:
    pass

c.remove(force=True)
print("ok")
