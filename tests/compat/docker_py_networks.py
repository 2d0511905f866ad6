"""docker-py against berth daemon: networks create/get/list/remove/prune, connect/disconnect, containers with
published ports, network stats.

Run by tests/compat_docker_py.rs inside the test daemon's network namespace (so 127.0.0.1 reaches its
published ports), with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import socket
import sys
import time

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

names = sorted(n.name for n in client.networks.list())
assert names == ["bridge", "host", "none"], names

ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.77.0.0/24", gateway="10.77.0.1")])
net = client.networks.create("pynet", driver="bridge", ipam=ipam, labels={"team": "py"})
assert net.name == "pynet"
got = client.networks.get("pynet")
assert got.id == net.id
assert got.attrs["IPAM"]["Config"][0]["Subnet"] == "10.77.0.0/24", got.attrs
assert got.attrs["Labels"] == {"team": "py"}
assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
assert [n.name for n in client.networks.list(filters={"label": "team=py"})] == ["pynet"]
assert client.networks.list(filters={"type": "custom"})[0].name == "pynet"
try:
    client.networks.create("pynet")
    raise AssertionError("duplicate network name accepted")
except docker.errors.APIError as e:
    assert e.status_code == 409, e

# A container with a published port, answered through the daemon's proxy on 127.0.0.1.
web = client.containers.run(
    "busybox",
    ["sh", "-c", "mkdir -p /www && echo py-hello > /www/index.html && exec httpd -f -p 80 -h /www"],
    detach=True, name="pyweb", ports={"80/tcp": ("127.0.0.1", None)}, dns=["127.0.0.1"],
)
web.reload()
binding = web.ports["80/tcp"][0]
assert binding["HostIp"] == "127.0.0.1", web.ports
port = int(binding["HostPort"])
assert port > 0
assert client.api.port(web.id, 80) == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
body = b""
for _ in range(50):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        body = b"".join(iter(lambda: s.recv(4096), b""))
        s.close()
        if b"py-hello" in body:
            break
    except OSError:
        pass
    time.sleep(0.1)
assert b"py-hello" in body, body

# connect / disconnect on the running container, as docker-py's Network object does them.
net.connect(web, aliases=["site"], ipv4_address="10.77.0.9")
web.reload()
assert web.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"] == "10.77.0.9", web.attrs["NetworkSettings"]
net.reload()
assert [c.name for c in net.containers] == ["pyweb"], net.attrs
out = client.containers.run(
    "busybox", ["sh", "-c", "nslookup site 127.0.0.11 | grep Address | tail -1"],
    network="pynet", dns=["127.0.0.1"], remove=True,
)
assert out == b"Address: 10.77.0.9\n", out
stats = web.stats(stream=False)
assert stats["networks"]["eth0"]["rx_bytes"] > 0, stats.get("networks")
assert "eth1" in stats["networks"], stats["networks"]
net.disconnect(web)
web.reload()
assert "pynet" not in web.attrs["NetworkSettings"]["Networks"]
try:
    net.remove()
    client.networks.create("pyother").remove()
except docker.errors.APIError as e:
    raise AssertionError(f"removing networks failed: {e}")
try:
    client.networks.get("pynet")
    raise AssertionError("removed network still found")
except docker.errors.NotFound:
    pass
client.networks.create("pyprune")
assert client.networks.prune()["NetworksDeleted"] == ["pyprune"]
try:
    client.networks.get("bridge").remove()
    raise AssertionError("removing the default network succeeded")
except docker.errors.APIError as e:
    assert e.status_code == 403, e
web.remove(force=True)
print("docker-py: all network checks passed")
sys.exit(0)
