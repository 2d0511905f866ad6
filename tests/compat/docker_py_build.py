"""docker-py against berth daemon: images.build (high level, with its log generator), api.build (low level,
streamed JSON), build args, target, labels, a failing RUN as docker-py reports it, and commit.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar.
"""
import io
import os
import tarfile
import tempfile

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

ctx = tempfile.mkdtemp()
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(
        "FROM busybox AS base\n"
        "ARG WHO=world\n"
        "RUN echo hello $WHO > /hello\n"
        "FROM base AS final\n"
        "LABEL from=docker-py\n"
        'CMD ["cat", "/hello"]\n'
    )

# High level: the image and the build's log lines.
image, logs = client.images.build(path=ctx, tag="py/app:1", buildargs={"WHO": "py"}, labels={"extra": "yes"})
lines = [entry.get("stream", "") for entry in logs]
# --labels add a last LABEL step, as dockerd adds it.
assert any(l.startswith("Step 1/7 : FROM busybox AS base") for l in lines), lines
assert "Step 7/7 : LABEL \"extra\"='yes'\n" in lines, lines
assert any("Successfully tagged py/app:1" in l for l in lines), lines
assert image.tags == ["py/app:1"], image.tags
assert image.labels == {"from": "docker-py", "extra": "yes"}, image.labels
assert client.containers.run("py/app:1", remove=True) == b"hello py\n"

# Again: from the cache, the same image.
again, logs = client.images.build(path=ctx, tag="py/app:1", buildargs={"WHO": "py"}, labels={"extra": "yes"})
assert again.id == image.id, (again.id, image.id)
logs = list(logs)
assert sum(1 for entry in logs if entry.get("stream") == " ---> Using cache\n") == 5, logs

# Low level, with a fileobj context and --target.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    df = b"FROM busybox\nRUN echo low > /low\nFROM busybox\nRUN exit 1\n"
    info = tarfile.TarInfo("Dockerfile")
    info.size = len(df)
    t.addfile(info, io.BytesIO(df))
buf.seek(0)
out = list(client.api.build(fileobj=buf, custom_context=True, target=None, tag="py/low:1", decode=True))
errors = [o for o in out if "error" in o]
assert errors and "The command '/bin/sh -c exit 1' returned a non-zero code: 1" in errors[0]["error"], out

# A failing build raises BuildError with the message.
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM busybox\nRUN echo partial && exit 7\n")
try:
    client.images.build(path=ctx)
    raise AssertionError("the build should have failed")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 7" in str(e), str(e)

# Commit: a container's change, a new CMD.
c = client.containers.run("busybox", "sh -c 'echo committed > /c'", detach=True)
c.wait()
img = c.commit(repository="py/committed", tag="1", changes=['CMD ["cat", "/c"]'], message="from docker-py")
assert client.containers.run("py/committed:1", remove=True) == b"committed\n"
assert client.images.get("py/committed:1").attrs["Comment"] == "from docker-py"
c.remove()
print("ok")
