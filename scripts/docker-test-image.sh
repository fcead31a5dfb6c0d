#!/usr/bin/env bash
# Builds the Docker image the driver tests and the P4 benchmark run:
# `drover-test/busybox:latest`, a root filesystem made from Debian's
# busybox-static package and loaded with `docker import` (no registry is
# reachable). Idempotent: does nothing when the image exists.
set -euo pipefail

IMAGE="${DROVER_TEST_IMAGE:-drover-test/busybox:latest}"

if ! command -v docker >/dev/null 2>&1; then
    echo "docker-test-image: no docker client on this machine" >&2
    exit 1
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download busybox-static >/dev/null 2>&1; then
    apt-get update -qq
    apt-get download busybox-static >/dev/null
fi
rootfs="$work/rootfs"
mkdir -p "$rootfs"
dpkg-deb -x busybox-static_*.deb "$work/pkg"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/www,home}
chmod 1777 "$rootfs/tmp"
cp "$work/pkg/bin/busybox" "$rootfs/bin/busybox"
# One symlink per applet, where busybox would install it.
"$rootfs/bin/busybox" --list-full | while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs/$applet"
done
cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "drover test image" > "$rootfs/var/www/index.html"
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "==> built $IMAGE from Debian's busybox-static"
