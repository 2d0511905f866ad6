"""docker-py (the Python SDK) against berth daemon: images list/get/load/save/tag/remove.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and FIXTURE pointing at the docker-save fixture.
Exits non-zero on the first failed assertion.
"""
import io
import os
import sys

import docker

WEBAPP_ID = "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a"

client = docker.from_env()
assert client.ping() is True
version = client.version()
assert version["ApiVersion"] == "1.50", version

with open(os.environ["FIXTURE"], "rb") as f:
    loaded = client.images.load(f.read())
assert [img.id for img in loaded] == [WEBAPP_ID], loaded

img = client.images.get("fixture/webapp:1.0")
assert img.id == WEBAPP_ID
assert img.tags == ["fixture/webapp:1.0"], img.tags
assert img.short_id == "sha256:577d8034c8e2", img.short_id
assert img.labels == {"org.example.purpose": "berth developer fixture"}, img.labels
assert len(img.attrs["RootFS"]["Layers"]) == 5
hist = img.history()
assert hist[0]["Id"] == WEBAPP_ID

assert [i.id for i in client.images.list()] == [WEBAPP_ID]
assert client.images.list(name="nosuch") == []

assert img.tag("pyrepo/app", tag="v1") is True
img.reload()
assert sorted(img.tags) == ["fixture/webapp:1.0", "pyrepo/app:v1"], img.tags

data = b"".join(img.save(named=True))
assert len(data) > 1_000_000

client.images.remove("pyrepo/app:v1")
client.images.remove("fixture/webapp:1.0")
try:
    client.images.get("fixture/webapp:1.0")
    raise AssertionError("image still there")
except docker.errors.ImageNotFound:
    pass

reloaded = client.images.load(io.BytesIO(data).getvalue())
assert [i.id for i in reloaded] == [WEBAPP_ID], reloaded
print("docker-py: all image checks passed")
sys.exit(0)
