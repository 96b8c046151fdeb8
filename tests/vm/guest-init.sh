#!/bin/busybox sh
# PID 1 of the cgroup v2 test VM (see run-in-vm.sh, which packs this file into the initramfs as
# /init together with a static busybox and the kernel modules listed in /lib/modules/order).
#
# stage 1 (in the initramfs): load the modules, build the guest's root and switch_root into it:
#     /                = host / (9p, read-only, cache=loose) + a tmpfs upper layer (overlayfs)
#     <shared dirs>    = host dirs shared read-write at the same path (9p; the project, its .venv)
#     /run/pyrt-vm/state = the host's per-run state dir (config, env+command script, rc)
#     /sys/fs/cgroup   = the only cgroup hierarchy: cgroup2 (the kernel runs with cgroup_no_v1=all);
#                        with VM_CGROUP=hybrid|legacy (systemd only) nothing: systemd mounts its layout
# stage 2 (PID 1 in the new root): enable every controller in the root cgroup, run the command
#     with stdout/stderr on two virtio serial ports, write its exit status to state/rc, power off.
# VM_INIT=systemd (in the state dir's config): stage 1 switch_roots into /lib/systemd/systemd
#     instead; its default target starts pyrt-vm.service (after basic.target and dbus), which runs
#     this script as "stage2" under systemd: the same command, rc and power-off, with systemd as PID 1.
# Progress lines "PYRT-VM: ..." go to the serial console; the host timestamps them.
BB=/bin/busybox
[ "$1" = stage2 ] && BB=/run/pyrt-vm/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "PYRT-VM: $*" > /dev/console; }
fatal() { say "FATAL: $*"; $BB sync; $BB poweroff -f; exit 1; }

# systemd_units ROOT: the guest's systemd configuration, written into the overlay (never the host):
# no fstab (the host's disks are not there), a default target that runs the command, and no units
# that only cost boot time under TCG or wait for hardware the VM lacks.
systemd_units() {
    local R=$1 u
    : > $R/etc/fstab
    $BB mkdir -p $R/etc/systemd/system
    $BB cat > $R/etc/systemd/system/pyrt-vm.target <<EOT
[Unit]
Description=pyruntime VM lane
Requires=basic.target pyrt-vm.service
After=basic.target pyrt-vm.service
AllowIsolate=yes
EOT
    $BB cat > $R/etc/systemd/system/pyrt-vm.service <<EOT
[Unit]
Description=pyruntime VM lane command
Wants=dbus.service
After=basic.target dbus.service dbus.socket
[Service]
Type=oneshot
ExecStart=/run/pyrt-vm/busybox sh /run/pyrt-vm/init stage2
StandardInput=null
StandardOutput=journal+console
TimeoutStartSec=infinity
EOT
    $BB ln -sfn /etc/systemd/system/pyrt-vm.target $R/etc/systemd/system/default.target
    for u in systemd-udev-trigger.service systemd-udevd.service systemd-udev-settle.service \
             systemd-timesyncd.service systemd-networkd.service systemd-networkd-wait-online.service \
             systemd-resolved.service systemd-logind.service getty.target console-getty.service \
             serial-getty@ttyS0.service systemd-random-seed.service apt-daily.timer \
             apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer logrotate.timer \
             systemd-tmpfiles-clean.timer containerd.service podman.socket cron.service ssh.service \
             systemd-binfmt.service proc-sys-fs-binfmt_misc.automount sys-kernel-debug.mount \
             sys-kernel-tracing.mount sys-fs-fuse-connections.mount modprobe@fuse.service \
             systemd-machine-id-commit.service systemd-pstore.service; do
        $BB ln -sfn /dev/null "$R/etc/systemd/system/$u"
    done
}

if [ "$1" != stage2 ]; then
    export PATH=/bin
    $BB mount -t proc proc /proc
    $BB mount -t sysfs sysfs /sys
    $BB mount -t devtmpfs devtmpfs /dev
    say "stage1"
    while read -r mod; do
        $BB insmod "/lib/modules/$mod" || say "insmod $mod failed"
    done < /lib/modules/order
    say "modules loaded"

    P9="trans=virtio,version=9p2000.L,msize=262144"
    $BB mkdir -p /state /lower /upper /newroot
    $BB mount -t 9p -o "$P9,cache=none" pyrtstate /state || fatal "cannot mount the state dir"
    . /state/config        # VM_SHARES ("path=9p-cache-mode ..."), VM_HOSTNAME
    $BB mount -t 9p -o "$P9,cache=loose,ro" hostroot /lower || fatal "cannot mount the host root"
    $BB mount -t tmpfs -o mode=0755 tmpfs /upper || fatal "tmpfs"
    $BB mkdir -p /upper/data /upper/work
    $BB mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot \
        || fatal "cannot mount the overlay root"

    R=/newroot
    $BB mount -t proc proc $R/proc
    $BB mount -t sysfs sysfs $R/sys
    $BB mount -t devtmpfs devtmpfs $R/dev
    $BB mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
    $BB mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts $R/dev/pts
    $BB mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/dev/shm
    $BB mount -t mqueue mqueue $R/dev/mqueue
    $BB ln -sfn /proc/self/fd $R/dev/fd
    $BB ln -sfn /proc/self/fd/0 $R/dev/stdin
    $BB ln -sfn /proc/self/fd/1 $R/dev/stdout
    $BB ln -sfn /proc/self/fd/2 $R/dev/stderr
    if [ "${VM_CGROUP:-v2}" = v2 ]; then   # hybrid/legacy: systemd mounts its layout itself
        $BB mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 $R/sys/fs/cgroup \
            || fatal "cannot mount cgroup2"
    fi
    $BB mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
    $BB mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp
    $BB mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $R/run
    $BB mkdir -p $R/run/pyrt-vm/state $R/run/lock
    $BB mount --move /state $R/run/pyrt-vm/state || fatal "cannot move the state dir"
    n=0
    for s in $VM_SHARES; do   # path=cache-mode, parents before children
        d=${s%=*}
        $BB mkdir -p "$R$d" 2>/dev/null
        $BB mount -t 9p -o "$P9,cache=${s##*=}" "pyrtrw$n" "$R$d" || fatal "cannot mount shared dir $d"
        n=$((n + 1))
    done
    $BB cp $BB $R/run/pyrt-vm/busybox
    $BB cp /init $R/run/pyrt-vm/init
    if [ "${VM_INIT:-shell}" = systemd ]; then
        systemd_units $R
        $BB umount /proc /sys
        $BB umount /dev 2>/dev/null
        say "switch_root (systemd)"
        # The host's / has /.dockerenv, so systemd sees a container and takes "its kernel command
        # line" from /proc/1/cmdline, its own argv: the cgroup layout options go there too
        # (a PID 1 systemd ignores arguments it does not know).
        exec $BB switch_root $R /lib/systemd/systemd --log-level=warning --show-status=no $VM_SYSTEMD_ARGS
        fatal "switch_root to systemd failed"
    fi
    $BB umount /proc /sys
    $BB umount /dev 2>/dev/null
    say "switch_root"
    exec $BB switch_root $R /run/pyrt-vm/busybox sh /run/pyrt-vm/init stage2
    fatal "switch_root failed"
fi

# ---- stage 2: PID 1 in the final root (or, with VM_INIT=systemd, pyrt-vm.service under systemd)
S=/run/pyrt-vm/state
. $S/config
if [ "${VM_INIT:-shell}" != systemd ]; then
    $BB mount --make-rshared /
    $BB hostname "${VM_HOSTNAME:-pyrt-vm}"
    $BB ip link set lo up 2>/dev/null
    for c in $($BB cat /sys/fs/cgroup/cgroup.controllers); do
        echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || say "cannot enable controller $c"
    done
else
    $BB hostname "${VM_HOSTNAME:-pyrt-vm}"
    say "systemd: $(/bin/systemctl is-system-running 2>&1)"
fi
if [ "${VM_CGROUP:-v2}" != v2 ]; then
    # hybrid/legacy: systemd owns the v1 hierarchies (/sys/fs/cgroup is its read-only tmpfs); the
    # command stays in pyrt-vm.service, as a runtime started by a service would
    say "cgroup layout ${VM_CGROUP}: $($BB ls /sys/fs/cgroup | $BB tr '\n' ' ')"
    say "running in cgroup $($BB tr '\n' ' ' < /proc/self/cgroup)"
else
    say "controllers: $($BB cat /sys/fs/cgroup/cgroup.subtree_control)"
    # The command runs the way a runtime usually does on a cgroup v2 host: from a nested, populated,
    # non-root cgroup (a systemd service, a CI runner), not from the root cgroup, which hides the kernel's
    # "no internal processes" rule.  ci.slice gets every controller; runner.service holds our processes.
    RUNNER=/sys/fs/cgroup/ci.slice/runner.service
    $BB mkdir -p $RUNNER || fatal "cannot create $RUNNER"
    for c in $($BB cat /sys/fs/cgroup/ci.slice/cgroup.controllers); do
        echo "+$c" > /sys/fs/cgroup/ci.slice/cgroup.subtree_control || say "cannot enable controller $c in ci.slice"
    done
    echo $$ > $RUNNER/cgroup.procs || fatal "cannot enter $RUNNER"
    say "running in cgroup $($BB cat /proc/self/cgroup)"
fi

OUT=/dev/console ERR=/dev/console
for p in /sys/class/virtio-ports/*; do
    case "$($BB cat "$p/name" 2>/dev/null)" in
        pyrt.stdout) OUT=/dev/${p##*/} ;;
        pyrt.stderr) ERR=/dev/${p##*/} ;;
    esac
done
[ "$OUT" = /dev/console ] && say "no stdout port, using the console"

say "command start"
$BB env -i /bin/bash --noprofile --norc $S/command < /dev/null > "$OUT" 2> "$ERR"
rc=$?
say "command end rc=$rc"
echo "$rc" > $S/rc.new && $BB mv $S/rc.new $S/rc
$BB sync
$BB poweroff -f
