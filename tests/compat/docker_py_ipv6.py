"""docker-py against berth daemon: a dual-stack network (enable_ipv6 with an IPv6 IPAM pool), a container with a
fixed IPv6 address through connect(ipv6_address=…), auxiliary addresses, and a port published on [::1].

Run by tests/compat_docker_py.rs inside the test daemon's network namespace (so [::1] reaches its published
ports), with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import socket
import time

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

ipam = docker.types.IPAMConfig(
    pool_configs=[
        docker.types.IPAMPool(subnet="10.66.0.0/24", aux_addresses={"router": "10.66.0.2"}),
        docker.types.IPAMPool(subnet="fd00:db8:66::/64", gateway="fd00:db8:66::1"),
    ]
)
net = client.networks.create("py6", driver="bridge", enable_ipv6=True, ipam=ipam)
attrs = client.networks.get("py6").attrs
assert attrs["EnableIPv6"] is True, attrs
cfg = attrs["IPAM"]["Config"]
assert [c["Subnet"] for c in cfg] == ["10.66.0.0/24", "fd00:db8:66::/64"], cfg
assert cfg[0]["AuxiliaryAddresses"] == {"router": "10.66.0.2"}, cfg

web = client.containers.run(
    "busybox",
    ["sh", "-c", "mkdir -p /www && echo py6-hello > /www/index.html && exec httpd -f -p 80 -h /www"],
    detach=True,
    network="py6",
    ports={"80/tcp": ("::1", 8096)},
)
web.reload()
ep = web.attrs["NetworkSettings"]["Networks"]["py6"]
# The auxiliary address is never handed out.
assert ep["IPAddress"] == "10.66.0.3", ep
assert ep["GlobalIPv6Address"] == "fd00:db8:66::2", ep
assert ep["GlobalIPv6PrefixLen"] == 64, ep
assert ep["IPv6Gateway"] == "fd00:db8:66::1", ep

body = b""
for _ in range(50):
    try:
        with socket.create_connection(("::1", 8096), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            body = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                body += chunk
        if body:
            break
    except OSError:
        time.sleep(0.1)
assert b"py6-hello" in body, body

# connect with a fixed IPv6 address, then reach the server over IPv6 from that container.
client_c = client.containers.create("busybox", ["sleep", "60"])
net.connect(client_c, ipv6_address="fd00:db8:66::42")
client_c.start()
client_c.reload()
ep = client_c.attrs["NetworkSettings"]["Networks"]["py6"]
assert ep["GlobalIPv6Address"] == "fd00:db8:66::42", ep
assert ep["IPAMConfig"]["IPv6Address"] == "fd00:db8:66::42", ep
code, out = client_c.exec_run(["wget", "-q", "-O", "-", "http://[fd00:db8:66::2]/"])
assert code == 0 and b"py6-hello" in out, (code, out)

for c in (web, client_c):
    c.remove(force=True)
net.remove()
print("ok")
