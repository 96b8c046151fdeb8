#!/bin/sh
# Build a minimal rootfs from Debian's busybox-static: one static binary plus applet links.
# Built on every machine, never committed.
set -eu
dest=$1
bb=$(command -v busybox)
if ldd "$bb" >/dev/null 2>&1; then echo "mkrootfs: $bb is not static (apt-get install busybox-static)" >&2; exit 1; fi
tmp=$dest.tmp.$$
rm -rf "$tmp"; mkdir -p "$tmp"
cd "$tmp"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/tmp run
chmod 1777 tmp var/tmp
cp "$bb" bin/busybox
for a in $(bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nuser:x:1000:1000:user:/home:/bin/sh\n' > etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n' > etc/group
echo pyruntime > etc/hostname
cd - >/dev/null
rm -rf "$dest"; mv "$tmp" "$dest"
