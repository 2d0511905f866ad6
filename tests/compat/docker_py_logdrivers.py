"""docker-py against berth daemon: log drivers (local read back, none refused with dockerd's 501, a bad option
refused at create with its 400), and /info's logging driver.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import os

import docker
from docker.types import LogConfig

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

info = client.info()
assert info["LoggingDriver"] == "json-file", info["LoggingDriver"]
for driver in ("json-file", "local", "syslog", "journald"):
    assert driver in info["Plugins"]["Log"], info["Plugins"]

local = LogConfig(type="local", config={"max-size": "10k", "max-file": "2"})
c = client.containers.run(
    "busybox", "sh -c 'seq 1 2000; echo done >&2'", detach=True, name="pylocal", log_config=local
)
assert c.wait()["StatusCode"] == 0
c.reload()
assert c.attrs["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-size": "10k", "max-file": "2"}}, c.attrs[
    "HostConfig"
]["LogConfig"]
assert c.attrs["LogPath"] == "", c.attrs["LogPath"]
assert c.logs(stdout=False, stderr=True) == b"done\n"
out = c.logs(stdout=True, stderr=False, tail=3)
assert out == b"1998\n1999\n2000\n", out
# Two files of 10k kept: the oldest lines rotated away, the rest in order.
lines = c.logs(stdout=True, stderr=False).split(b"\n")[:-1]
first = int(lines[0])
assert first > 1 and [int(x) for x in lines] == list(range(first, 2001)), (first, len(lines))
c.remove()

quiet = client.containers.run(
    "busybox", "echo hi", detach=True, name="pynone", log_config=LogConfig(type="none")
)
quiet.wait()
try:
    quiet.logs()
    raise AssertionError("logs of a none container did not raise")
except docker.errors.APIError as e:
    assert e.status_code == 501, e.status_code
    assert e.explanation == "configured logging driver does not support reading", e.explanation
quiet.remove()

try:
    client.containers.create("busybox", "true", log_config=LogConfig(type="local", config={"bogus": "1"}))
    raise AssertionError("a bad log option was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400, e.status_code
    assert e.explanation == "unknown log opt 'bogus' for log driver local", e.explanation
try:
    client.containers.create("busybox", "true", log_config=LogConfig(type="nope"))
    raise AssertionError("an unknown driver was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400, e.status_code
    assert e.explanation == "logger: no log driver named 'nope' is registered", e.explanation
assert client.containers.list(all=True) == []
print("ok")
