"""docker-py against berth daemon: containers run/create/start/stop/logs/wait/top/stats/attach/remove.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import sys
import time

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

out = client.containers.run("busybox", "echo hello from python", remove=True)
assert out == b"hello from python\n", out

try:
    client.containers.run("busybox", "sh -c 'exit 3'", remove=True)
    raise AssertionError("exit 3 did not raise")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e.exit_status

c = client.containers.run("busybox", "sh -c 'echo out; echo err >&2; exec sleep 1000'", detach=True, name="pyweb")
time.sleep(0.3)
c.reload()
assert c.status == "running", c.status
assert c.name == "pyweb"
assert c.logs(stdout=True, stderr=False) == b"out\n", c.logs(stdout=True, stderr=False)
assert c.logs(stdout=False, stderr=True) == b"err\n"
top = c.top()
assert top["Titles"][1] == "PID", top
assert any("sleep 1000" in p[-1] for p in top["Processes"]), top
stats = c.stats(stream=False)
assert stats["pids_stats"]["current"] >= 1, stats
assert stats["memory_stats"]["usage"] > 0, stats
assert [x.id for x in client.containers.list()] == [c.id]
c.stop(timeout=1)
assert c.wait()["StatusCode"] == 137
c.reload()
assert c.status == "exited"
c.remove()
assert client.containers.list(all=True) == []

# Low-level attach stream: attach before start, then read the output.
created = client.api.create_container("busybox", "sh -c 'echo attached'")
sock = client.api.attach(created["Id"], stream=True, stdout=True, stderr=True, logs=True)
client.api.start(created["Id"])
chunks = b"".join(sock)
assert b"attached" in chunks, chunks
assert client.api.wait(created["Id"])["StatusCode"] == 0
client.api.remove_container(created["Id"])
print("docker-py: all container checks passed")
sys.exit(0)
