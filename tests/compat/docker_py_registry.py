"""docker-py against Berth and a local registry with basic auth: login (a wrong password refused
with the registry's status), push, remove, pull back the same image with its RepoDigest."""

import os
import sys

import docker

reg = os.environ["REGISTRY"]
user = os.environ["REG_USER"]
password = os.environ["REG_PASSWORD"]
c = docker.from_env()

try:
    c.login(username=user, password="wrong", registry=reg, reauth=True)
    sys.exit("login with a wrong password succeeded")
except docker.errors.APIError as e:
    assert e.status_code == 401, e
    assert "401 Unauthorized" in str(e), e

answer = c.login(username=user, password=password, registry=reg, reauth=True)
assert answer["Status"] == "Login Succeeded", answer

busybox = c.images.get("busybox")
repo = f"{reg}/py"
assert busybox.tag(repo, "1")
digest = None
for line in c.images.push(repo, tag="1", stream=True, decode=True):
    assert "error" not in line, line
    if "aux" in line:
        digest = line["aux"]["Digest"]
        assert line["aux"]["Tag"] == "1", line
assert digest and digest.startswith("sha256:"), digest

c.images.remove(f"{repo}:1")
c.images.remove("busybox")
pulled = c.images.pull(repo, tag="1")
assert pulled.id == busybox.id, (pulled.id, busybox.id)
assert f"{repo}@{digest}" in pulled.attrs["RepoDigests"], pulled.attrs
assert f"{repo}:1" in pulled.tags, pulled.tags
print("ok")
