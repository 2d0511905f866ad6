"""docker-py against berth daemon: legacy links (`links=` of run, `remove_container(link=True)`) and links on a
user-defined network through `connect_container_to_network(links=...)`.

Run by tests/compat_docker_py.rs inside the test daemon's network namespace, with DOCKER_HOST set and ROOTFS
pointing at a busybox rootfs tar.
"""
import os

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

db = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="pydb",
                           environment={"LEVEL": "3"}, ports={"6379/tcp": None}, dns=["127.0.0.1"])
db.reload()
db_ip = db.attrs["NetworkSettings"]["IPAddress"]
app = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="pyapp",
                            links={"pydb": "cache"}, dns=["127.0.0.1"])
app.reload()
assert app.attrs["HostConfig"]["Links"] == ["/pydb:/pyapp/cache"], app.attrs["HostConfig"]["Links"]
code, out = app.exec_run(["sh", "-c", "echo $CACHE_PORT $CACHE_NAME $CACHE_ENV_LEVEL; grep cache /etc/hosts"])
assert code == 0, out
lines = out.decode().splitlines()
assert lines[0] == f"tcp://{db_ip}:6379 /pyapp/cache 3", lines
assert lines[1] == f"{db_ip}\tcache {db.id[:12]} pydb", lines
assert "/pyapp/cache" in client.api.containers(filters={"id": db.id})[0]["Names"]

# A link to a missing container is a 400 with dockerd's words.
try:
    client.containers.create("busybox", "true", links={"nosuch": "x"})
    raise AssertionError("a link to a missing container was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400, e
    assert "could not get container for nosuch" in str(e), e

client.api.remove_container("/pyapp/cache", link=True)
app.reload()
assert app.attrs["HostConfig"]["Links"] is None, app.attrs["HostConfig"]["Links"]
db.reload()
assert db.status == "running"

# On a user-defined network, a link is an alias for the linking container.
net = client.networks.create("pylinks")
srv = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="pysrv", network="pylinks",
                            dns=["127.0.0.1"])
cli = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="pycli", dns=["127.0.0.1"])
client.api.connect_container_to_network(cli.id, net.id, links=[("pysrv", "backend")])
srv.reload()
cli.reload()
srv_ip = srv.attrs["NetworkSettings"]["Networks"]["pylinks"]["IPAddress"]
assert cli.attrs["NetworkSettings"]["Networks"]["pylinks"]["Links"] == ["pysrv:backend"], cli.attrs
code, out = cli.exec_run(["nslookup", "backend", "127.0.0.11"])
assert code == 0 and f"Address: {srv_ip}" in out.decode(), out

for c in (cli, srv, app, db):
    c.remove(force=True)
net.remove()
print("ok")
