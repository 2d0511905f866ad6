#!/usr/bin/env bash
# The main job on a fresh machine: build Berth, start `berth daemon` on a private root, make a busybox image
# locally from Debian's busybox-static (no registry), and use it: images through the berth CLI, a container run
# from it, and a web app built from a Dockerfile, published on loopback and fetched with curl.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build -p berth
berth=$PWD/target/debug/berth

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
sock=unix://$work/berth.sock
"$berth" daemon --data-root "$work/data" --exec-root "$work/exec" -H "$sock" 2>"$work/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done

echo "== a busybox rootfs from Debian's busybox-static, imported as busybox:latest"
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -c . | "$berth" -H "$sock" import -c 'CMD ["sh"]' - busybox:latest

echo "== berth images"
"$berth" -H "$sock" images
echo "== berth image inspect"
"$berth" -H "$sock" image inspect busybox --format '{{.Id}} {{json .Config.Cmd}} {{.Size}}'
echo "== berth run: a container from that image"
"$berth" -H "$sock" run --rm busybox sh -c 'echo "hello from a Berth container: $(uname -sr), pid $$, $(id)"'
"$berth" -H "$sock" run -d --name web busybox sh -c 'echo serving; exec sleep 300' >/dev/null
"$berth" -H "$sock" ps
"$berth" -H "$sock" logs web
"$berth" -H "$sock" rm -f web >/dev/null
echo "== berth build: a web page served by busybox httpd, from a Dockerfile"
mkdir -p "$work/app/site"
cat >"$work/app/site/index.html" <<'HTML'
<!doctype html><title>Berth</title><h1>Hello from an image Berth built</h1>
HTML
cat >"$work/app/Dockerfile" <<'DOCKERFILE'
FROM busybox:latest
WORKDIR /var/www
COPY site/ /var/www/
RUN echo "built $(date -u +%F)" > /var/www/build.txt
EXPOSE 80
CMD ["httpd", "-f", "-v", "-p", "80", "-h", "/var/www"]
DOCKERFILE
"$berth" -H "$sock" build -t demo/web:1 "$work/app"
echo "== the same build again: every step from the cache"
"$berth" -H "$sock" build -t demo/web:1 "$work/app" | grep -c 'Using cache'
"$berth" -H "$sock" run -d --name web -p 127.0.0.1::80 demo/web:1 >/dev/null
port=$("$berth" -H "$sock" port web 80/tcp | head -1)
echo "== curl http://$port/ (published on loopback)"
for _ in $(seq 50); do curl -fsS "http://$port/" && break; sleep 0.1; done
"$berth" -H "$sock" rm -f web >/dev/null
echo "== save | load round trip"
"$berth" -H "$sock" save busybox | "$berth" -H "$sock" load
if [ -x /usr/local/bin/docker ]; then
    echo "== the real docker CLI against berth"
    DOCKER_HOST=$sock /usr/local/bin/docker version --format 'Server: {{.Server.Platform.Name}} {{.Server.Version}} (API {{.Server.APIVersion}})'
    DOCKER_HOST=$sock /usr/local/bin/docker images
    DOCKER_HOST=$sock /usr/local/bin/docker run --rm busybox echo "the docker CLI runs containers through Berth too"
fi
echo "== done"
