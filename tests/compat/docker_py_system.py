"""docker-py against berth daemon: info, version, df and the prunes' reclaimed space.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])
image_size = client.images.get("busybox").attrs["Size"]

info = client.info()
assert info["Driver"] == "overlay2", info["Driver"]
assert info["Swarm"]["LocalNodeState"] == "inactive", info["Swarm"]
assert "name=seccomp,profile=builtin" in info["SecurityOptions"], info["SecurityOptions"]
assert info["InitBinary"] == "docker-init", info
assert info["RegistryConfig"]["IndexConfigs"]["docker.io"]["Official"] is True, info["RegistryConfig"]
assert info["Plugins"]["Volume"] == ["local"], info["Plugins"]
assert info["Images"] == 1, info["Images"]

version = client.version()
assert [c["Name"] for c in version["Components"]] == ["Engine", "berth", "docker-init"], version
assert version["ApiVersion"] == "1.50", version
assert version["GoVersion"].startswith("rustc "), version

writer = client.containers.run("busybox", ["sh", "-c", "head -c 30000 /dev/zero > /f"], name="writer", detach=True)
writer.wait()
client.containers.run("busybox", ["sh", "-c", "head -c 4000 /dev/zero > /vol/g"], volumes={"pydata": {"bind": "/vol"}}, remove=True)

df = client.df()
assert df["LayersSize"] == image_size, df
[img] = df["Images"]
assert (img["Size"], img["SharedSize"], img["Containers"]) == (image_size, 0, 1), img
[ctr] = df["Containers"]
assert (ctr["SizeRw"], ctr["SizeRootFs"]) == (30000, image_size + 30000), ctr
[vol] = df["Volumes"]
assert vol["Name"] == "pydata" and vol["UsageData"] == {"Size": 4000, "RefCount": 0}, vol
assert df["BuildCache"] == [], df

# The container attributes with sizes, as docker-py asks for them.
listed = client.api.containers(all=True, size=True)
assert listed[0]["SizeRw"] == 30000, listed
# docker-py's inspect has no size flag: its raw GET does.
inspected = client.api._result(client.api._get(client.api._url("/containers/{0}/json", "writer"), params={"size": 1}), True)
assert (inspected["SizeRw"], inspected["SizeRootFs"]) == (30000, image_size + 30000), inspected

report = client.containers.prune()
assert report["ContainersDeleted"] == [writer.id], report
assert report["SpaceReclaimed"] == 30000, report
report = client.volumes.prune(filters={"all": "true"})
assert report["VolumesDeleted"] == ["pydata"] and report["SpaceReclaimed"] == 4000, report
report = client.images.prune(filters={"dangling": False})
assert report["SpaceReclaimed"] == image_size, report
assert client.df()["LayersSize"] == 0
print("ok")
