"""docker-py against berth daemon: healthchecks (State.Health through container.attrs, health filter) and
detach keys on the low-level attach and exec sockets.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import time

import docker
from docker.types import Healthcheck

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])


def wait_for(c, pred, what):
    deadline = time.time() + 15
    while True:
        c.reload()
        health = c.attrs["State"].get("Health")
        if health and pred(health):
            return health
        assert time.time() < deadline, f"never {what}: {health}"
        time.sleep(0.05)


ms = 1_000_000
good = client.containers.run(
    "busybox", "sleep 1000", detach=True, name="pygood",
    healthcheck=Healthcheck(test=["CMD-SHELL", "echo fine"], interval=100 * ms),
)
bad = client.containers.run(
    "busybox", "sleep 1000", detach=True, name="pybad",
    healthcheck={"test": ["CMD", "false"], "interval": 100 * ms, "retries": 2},
)
plain = client.containers.run("busybox", "sleep 1000", detach=True, name="pyplain")

h = wait_for(good, lambda h: h["Status"] == "healthy", "healthy")
assert h["FailingStreak"] == 0, h
assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "fine\n", h
assert good.health == "healthy", good.health

h = wait_for(bad, lambda h: h["Status"] == "unhealthy", "unhealthy")
assert h["FailingStreak"] >= 2, h
assert h["Log"][-1]["ExitCode"] == 1, h

assert "Health" not in plain.attrs["State"], plain.attrs["State"]
assert [c.name for c in client.containers.list(filters={"health": "healthy"})] == ["pygood"]
assert [c.name for c in client.containers.list(filters={"health": "unhealthy"})] == ["pybad"]
assert [c.name for c in client.containers.list(filters={"health": "none"})] == ["pyplain"]
try:
    client.containers.list(filters={"health": "sort-of"})
    raise AssertionError("a bad health filter was accepted")
except docker.errors.APIError as e:
    assert "Unrecognised filter value for health: sort-of" in str(e), e

# Detach keys on a TTY attach: the server ends the stream at the keys; the container runs on.
api = client.api
tty = api.create_container("busybox", "sh", tty=True, stdin_open=True, name="pytty")
api.start(tty)
sock = api.attach_socket(tty, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,x"})
raw = sock._sock
raw.sendall(b"echo before\n")
time.sleep(0.3)
raw.sendall(b"\x18x")
raw.settimeout(10)
data = b""
while True:
    chunk = raw.recv(4096)
    if not chunk:
        break
    data += chunk
assert b"before" in data, data
assert api.inspect_container(tty)["State"]["Running"], "detaching stopped the container"

try:
    api.attach_socket(tty, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-xx"})
    raise AssertionError("bad detach keys were accepted")
except docker.errors.APIError as e:
    assert "Invalid detach keys (ctrl-xx) provided" in str(e), e

# And on a TTY exec: the session ends, the process goes on.
e = api.exec_create(tty, "sh -c 'echo in-exec; exec sleep 777'", stdin=True, tty=True)
sock = api.exec_start(e["Id"], socket=True, tty=True)
raw = sock._sock
raw.settimeout(10)
time.sleep(0.3)
raw.sendall(b"\x10\x11")
data = b""
while True:
    chunk = raw.recv(4096)
    if not chunk:
        break
    data += chunk
assert b"in-exec" in data, data
assert api.exec_inspect(e["Id"])["Running"], api.exec_inspect(e["Id"])
try:
    api.exec_create(tty, "true", detach_keys="nope")
    raise AssertionError("bad exec detach keys were accepted")
except docker.errors.APIError as err:
    assert "Invalid escape keys (nope) provided" in str(err), err

for c in client.containers.list(all=True):
    c.remove(force=True)
print("ok")
