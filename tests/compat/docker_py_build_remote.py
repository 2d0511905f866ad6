"""docker-py against berth daemon: images.build from a URL and a git repository (docker-py sends these as
`remote=`, so the daemon fetches them), a Dockerfile-only URL, a 404 as dockerd words it.

Run by tests/compat_docker_py.rs with DOCKER_HOST set and ROOTFS pointing at a busybox rootfs tar, inside
the daemon's network namespace: the files are served from this script's own loopback server.
"""
import http.server
import io
import os
import subprocess
import tarfile
import tempfile
import threading

import docker

client = docker.from_env()
with open(os.environ["ROOTFS"], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest", changes=['CMD ["sh"]'])

files = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path not in files:
            body = b"nothing here\n"
            self.send_response(404)
        else:
            body, ctype = files[path]
            self.send_response(200)
            if ctype:
                self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]


def tar_gz(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1600000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


dockerfile = b"FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n"
files["/ctx.tar.gz"] = (tar_gz({"Dockerfile": dockerfile, "msg": b"remote via docker-py\n"}), "application/gzip")
files["/Dockerfile"] = (b"FROM busybox\nRUN echo only a dockerfile > /only\n", "text/plain")

image, logs = client.images.build(path=base + "/ctx.tar.gz", tag="py/remote:1")
assert image.tags == ["py/remote:1"], image.tags
assert client.containers.run("py/remote:1", remove=True) == b"remote via docker-py\n"

# The same content again: from the cache.
again, logs = client.images.build(path=base + "/ctx.tar.gz", tag="py/remote:1")
assert again.id == image.id
assert sum("Using cache" in e.get("stream", "") for e in logs) == 2, list(logs)

image, _ = client.images.build(path=base + "/Dockerfile", tag="py/dfonly")
assert client.containers.run("py/dfonly", "cat /only", remove=True) == b"only a dockerfile\n"

try:
    client.images.build(path=base + "/missing.tar")
    raise AssertionError("a 404 context built")
except (docker.errors.BuildError, docker.errors.APIError) as e:
    want = "failed to GET %s/missing.tar with status 404 Not Found: nothing here" % base
    assert want in str(e), str(e)

# A git repository over dumb HTTP, with a reference and a subdirectory.
src = tempfile.mkdtemp()
os.makedirs(os.path.join(src, "app"))
with open(os.path.join(src, "app", "Dockerfile"), "wb") as f:
    f.write(b"FROM busybox\nCOPY . /app\n")
with open(os.path.join(src, "app", "note"), "wb") as f:
    f.write(b"from git via docker-py\n")
env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
           GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
for args in (["init", "-q", "-b", "trunk"], ["add", "."], ["commit", "-q", "-m", "ctx"]):
    subprocess.run(["git"] + args, cwd=src, env=env, check=True)
bare = tempfile.mkdtemp()
subprocess.run(["git", "clone", "-q", "--bare", src, bare + "/r.git"], check=True)
subprocess.run(["git", "update-server-info"], cwd=bare + "/r.git", check=True)
for root, _, names in os.walk(bare):
    for n in names:
        p = os.path.join(root, n)
        with open(p, "rb") as f:
            files["/" + os.path.relpath(p, bare)] = (f.read(), None)

image, _ = client.images.build(path=base + "/r.git#trunk:app", tag="py/git")
assert client.containers.run("py/git", "cat /app/note", remove=True) == b"from git via docker-py\n"
print("ok")
