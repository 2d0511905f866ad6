#!/usr/bin/env bash
# The main job on a fresh machine: build Berth, start `berth daemon` on a private root, make a busybox image
# locally from Debian's busybox-static (no registry), and use it: images through the berth CLI, and a container
# run from it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s busybox-static >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
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
echo "== save | load round trip"
"$berth" -H "$sock" save busybox | "$berth" -H "$sock" load
if [ -x /usr/local/bin/docker ]; then
    echo "== the real docker CLI against berth"
    DOCKER_HOST=$sock /usr/local/bin/docker version --format 'Server: {{.Server.Platform.Name}} {{.Server.Version}} (API {{.Server.APIVersion}})'
    DOCKER_HOST=$sock /usr/local/bin/docker images
    DOCKER_HOST=$sock /usr/local/bin/docker run --rm busybox echo "the docker CLI runs containers through Berth too"
fi
echo "== done"
