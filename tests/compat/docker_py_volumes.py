"""docker-py against berth daemon: volumes create/list/get/remove/prune, and containers using volumes.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os
import sys

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

v = client.volumes.create(name="pyvol", driver="local", labels={"team": "py"})
assert v.name == "pyvol", v.name
assert v.attrs["Driver"] == "local", v.attrs
assert v.attrs["Labels"] == {"team": "py"}, v.attrs
assert v.attrs["Mountpoint"].endswith("/volumes/pyvol/_data"), v.attrs
assert v.attrs["Scope"] == "local", v.attrs
assert [x.name for x in client.volumes.list()] == ["pyvol"]
assert [x.name for x in client.volumes.list(filters={"label": "team=py"})] == ["pyvol"]
assert client.volumes.list(filters={"label": "team=go"}) == []
assert client.volumes.get("pyvol").attrs["Name"] == "pyvol"

try:
    client.volumes.get("nope")
    raise AssertionError("a missing volume was found")
except docker.errors.NotFound as e:
    assert "no such volume" in str(e), e

try:
    client.volumes.create(name="bad", driver_opts={"nope": "1"})
    raise AssertionError("an unknown driver option was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400, e
    assert 'invalid option: "nope"' in str(e), e

# A container writes into the volume; another one reads it back.
client.containers.run("busybox", "sh -c 'echo from python > /d/f'", volumes={"pyvol": {"bind": "/d", "mode": "rw"}}, remove=True)
out = client.containers.run("busybox", "cat /d/f", volumes=["pyvol:/d:ro"], remove=True)
assert out == b"from python\n", out

c = client.containers.create("busybox", "true", volumes=["pyvol:/d", "/anon"])
mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
assert mounts["/d"]["Type"] == "volume" and mounts["/d"]["Name"] == "pyvol", mounts
assert mounts["/anon"]["Type"] == "volume" and len(mounts["/anon"]["Name"]) == 64, mounts
anon = mounts["/anon"]["Name"]

try:
    v.remove()
    raise AssertionError("an in-use volume was removed")
except docker.errors.APIError as e:
    assert e.status_code == 409, e
    assert "volume is in use" in str(e), e

c.remove(v=True)
names = sorted(x.name for x in client.volumes.list())
assert names == ["pyvol"], names

anon_vol = client.volumes.create()
assert len(anon_vol.name) == 64
report = client.volumes.prune()
assert report["VolumesDeleted"] == [anon_vol.name], report
report = client.volumes.prune(filters={"all": "true"})
assert report["VolumesDeleted"] == ["pyvol"], report
assert report["SpaceReclaimed"] == len(b"from python\n"), report
assert client.volumes.list() == []
assert anon not in [x.name for x in client.volumes.list()]
print("docker-py: all volume checks passed")
sys.exit(0)
