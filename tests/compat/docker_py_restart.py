"""docker-py against berth daemon: restart_policy, container.update, and init=True.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import time

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])


def wait_for(cond, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# on-failure with a retry bound: two restarts, then it stays exited.
c = client.containers.run(
    "busybox", "sh -c 'exit 2'", detach=True, restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}
)
assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}, c.attrs["HostConfig"]
assert wait_for(lambda: (c.reload() or True) and c.status == "exited" and c.attrs["RestartCount"] == 2), c.attrs["State"]
assert c.attrs["State"]["ExitCode"] == 2, c.attrs["State"]
c.remove()

# always: restarting, then stopped by the user.
c = client.containers.run("busybox", "false", detach=True, restart_policy={"Name": "always"})
assert wait_for(lambda: (c.reload() or True) and c.attrs["RestartCount"] >= 2), c.attrs
c.stop(timeout=1)
c.reload()
assert c.status == "exited", c.status
n = c.attrs["RestartCount"]
time.sleep(0.5)
c.reload()
assert c.attrs["RestartCount"] == n, (n, c.attrs["RestartCount"])
c.remove(force=True)

# --rm with a policy is refused in dockerd's words.
try:
    client.containers.create("busybox", "true", auto_remove=True, restart_policy={"Name": "always"})
    raise AssertionError("AutoRemove with a restart policy was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400, e
    assert "can't create 'AutoRemove' container with restart policy" in str(e), e

# update: resources and restart policy of a running container.
c = client.containers.run("busybox", "sleep 100", detach=True, mem_limit="64m")
assert c.attrs["HostConfig"]["MemorySwap"] in (134217728, -1), c.attrs["HostConfig"]
r = c.update(mem_limit="100m", memswap_limit="300m", cpu_shares=256, restart_policy={"Name": "unless-stopped"})
assert r == {"Warnings": []}, r
c.reload()
h = c.attrs["HostConfig"]
assert h["Memory"] == 100 * 1024 * 1024, h["Memory"]
assert h["MemorySwap"] == 300 * 1024 * 1024, h["MemorySwap"]
assert h["CpuShares"] == 256, h
assert h["RestartPolicy"]["Name"] == "unless-stopped", h["RestartPolicy"]
if os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    code, out = c.exec_run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares")
    assert code == 0 and out.split() == [b"104857600", b"256"], (code, out)
try:
    c.update(mem_limit="1g")
    raise AssertionError("memory above the swap limit was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 409, e
    assert "update the memoryswap at the same time" in str(e), e
c.remove(force=True)

# init=True: docker-init is PID 1 and the command's status comes back.
out = client.containers.run("busybox", "ps -o pid,args", init=True, remove=True)
assert b"1 /sbin/docker-init -- ps -o pid,args" in out, out
c = client.containers.run("busybox", "sh -c 'exit 5'", init=True, detach=True)
assert c.wait()["StatusCode"] == 5
assert c.attrs["HostConfig"]["Init"] is True, c.attrs["HostConfig"]
c.remove()
print("ok")
