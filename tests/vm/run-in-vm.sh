#!/bin/bash
# run-in-vm.sh - run one command inside a throw-away qemu VM whose only cgroup hierarchy is a pure
# cgroup v2 one (kernel booted with cgroup_no_v1=all, every controller enabled in the root
# cgroup.subtree_control), for pyruntime's `make test-cgroup2` and `make test-systemd` lanes (the
# latter also boots systemd on the hybrid and legacy v1 layouts: VM_CGROUP).
#
#   tests/vm/run-in-vm.sh [--] PROGRAM [ARGS...]   run PROGRAM in the VM, exit with its status
#   tests/vm/run-in-vm.sh --check                  exit 0 if a VM can be started here, else print
#                                                  the reason and exit 77
#
# Inside the VM: / is the host's / read-only (9p) under a tmpfs overlay (writes vanish at power-off);
# the project directory (and VM_RW_DIRS) are the host's, read-write, at the same path; /tmp, /run are
# fresh tmpfs; /sys/fs/cgroup is cgroup2; /dev/vda is a 1 GiB null block device (for io.max); uid 0;
# cwd = the host's cwd; stdin = /dev/null; environment = PATH HOME LANG LC_* TZ CI PYTHON* PYTEST_*
# PYRUNTIME_* + names listed in VM_PASS_ENV, plus PYRUNTIME_TEST_VM=1.
# PROGRAM's stdout/stderr come back on ours. A timing line goes to stderr at the end.
#
# Exit status: PROGRAM's; 124 = killed after VM_TIMEOUT; 125 = VM did not boot / no status came back
#              (the guest console tail is printed); 77 = --check: VM not usable here.
#
# Knobs: VM_TIMEOUT=900 (s, whole VM)  VM_MEM=2G  VM_CPUS=2  VM_ACCEL=tcg|kvm  VM_VERBOSE=1 (console
#        on stderr)  VM_CONSOLE_LOG=file  VM_RW_DIRS=a:b (more rw dirs)  VM_PASS_ENV="A B"
#        VM_KVER=<uname -r>  VM_CACHE_DIR=<project>/.cache/vm  VM_EXTRA_CMDLINE=...  VM_QEMU_ARGS=...
#        VM_RW_CACHE=mmap (9p cache mode of the project dir)  VM_VENV_CACHE=loose|off (its .venv)
#        VM_SRC_CACHE=loose|off (its pyruntime package)
#        VM_WRITE_BYTECODE=1 (unset PYTHONDONTWRITEBYTECODE in the guest; 0 = pass it through)
#        VM_INIT=shell|systemd (systemd: systemd is PID 1 and runs PROGRAM from a service unit)
#        VM_CGROUP=v2|hybrid|legacy (hybrid/legacy need VM_INIT=systemd: the kernel keeps its v1
#        controllers and systemd mounts them, with systemd.unified_cgroup_hierarchy=0: "hybrid" =
#        v1 controllers + cgroup2 at /sys/fs/cgroup/unified; "legacy" = v1 only, name=systemd too)
#
# Why TCG: /dev/kvm on the CI machines is a paravirtual (PVM) device that cannot boot stock kernels.
# Boot speed tricks: the uncompressed vmlinux is extracted once (cached) and booted via PVH (no
# decompression under TCG); the initramfs (busybox + a handful of modules) is cached too.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PROJECT=$(cd "$HERE/../.." && pwd -P)
CACHE=${VM_CACHE_DIR:-$PROJECT/.cache/vm}
GUEST_INIT=$HERE/guest-init.sh
MODULES="virtio_pci virtio_console virtio_blk virtio_rng 9pnet_virtio 9p overlay"
now() { echo "${EPOCHREALTIME/,/.}"; }   # (some locales print a decimal comma)
T_START=$(now)

msg() { echo "run-in-vm: $*" >&2; }
die() { msg "$*"; exit 125; }

# ---------------------------------------------------------------- host checks
find_kernel() {   # newest /boot/vmlinuz-* whose modules include 9p
    local k v
    if [ -n "${VM_KVER:-}" ]; then echo "$VM_KVER"; return 0; fi
    for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -rV); do
        v=${k#/boot/vmlinuz-}
        [ -f "/lib/modules/$v/modules.dep" ] && grep -q '/9p\.ko' "/lib/modules/$v/modules.dep" \
            && { echo "$v"; return 0; }
    done
    return 1
}

check_host() {   # sets KVER BUSYBOX, or WHY (the reason) and fails when no VM can run here
    local q busybox
    q=$(command -v qemu-system-x86_64) || { WHY="qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"; return 1; }
    "$q" -accel help 2>/dev/null | grep -qx "${VM_ACCEL:-tcg}" \
        || { WHY="$q does not support the ${VM_ACCEL:-tcg} accelerator"; return 1; }
    KVER=$(find_kernel) || { WHY="no /boot/vmlinuz-* with 9p modules (apt-get install linux-image-amd64)"; return 1; }
    [ -r "/boot/vmlinuz-$KVER" ] || { WHY="/boot/vmlinuz-$KVER not readable"; return 1; }
    busybox=$(command -v busybox) || { WHY="busybox not installed (apt-get install busybox-static)"; return 1; }
    if LC_ALL=C ldd "$busybox" >/dev/null 2>&1; then
        WHY="$busybox is dynamically linked (apt-get install busybox-static)"; return 1
    fi
    BUSYBOX=$busybox
    local t
    for t in cpio gzip xz zstd timeout; do
        command -v $t >/dev/null || { WHY="$t not installed (apt-get install cpio xz-utils zstd)"; return 1; }
    done
    if [ "${VM_ACCEL:-tcg}" = kvm ] && [ ! -w /dev/kvm ]; then WHY="/dev/kvm not usable"; return 1; fi
    return 0
}

if [ "${1:-}" = --check ]; then
    if check_host; then
        echo "run-in-vm: ok: $(qemu-system-x86_64 --version | head -1), kernel $KVER, accel ${VM_ACCEL:-tcg}"
        exit 0
    fi
    echo "run-in-vm: VM not usable: $WHY"
    exit 77
fi
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || die "usage: $0 [--check | [--] PROGRAM [ARGS...]]"
check_host || die "VM not usable: $WHY"

# ---------------------------------------------------------------- cached boot artefacts
mkdir -p "$CACHE" || die "cannot create $CACHE"
KMODS=/lib/modules/$KVER

module_closure() {   # module names -> their .ko paths (relative to $KMODS), dependencies first
    local -A seen=()
    local -a order=()
    visit() {
        local rel deps d
        rel=$(grep -E "(^|/)$1\.ko(\.[a-z]+)?:" "$KMODS/modules.dep" | head -1)
        if [ -z "$rel" ]; then   # built in, or named with '-' instead of '_'
            local alt=${1//_/-}
            [ "$alt" != "$1" ] && rel=$(grep -E "(^|/)$alt\.ko(\.[a-z]+)?:" "$KMODS/modules.dep" | head -1)
        fi
        [ -n "$rel" ] || return 0
        deps=${rel#*:}; rel=${rel%%:*}
        [ -n "${seen[$rel]:-}" ] && return 0
        seen[$rel]=1
        for d in $deps; do
            d=${d##*/}; visit "${d%%.ko*}"
        done
        order+=("$rel")
    }
    local m
    for m in "$@"; do visit "$m"; done
    printf '%s\n' "${order[@]}"
}

build_initramfs() {   # -> path of the cached initramfs for $KVER
    local key img tmp rel base
    key=$( { cat "$GUEST_INIT"; echo "$KVER $MODULES"; sha256sum < "$BUSYBOX"; } | sha256sum | cut -c1-12)
    img=$CACHE/initramfs-$KVER-$key.cpio.gz
    if [ ! -s "$img" ]; then
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/pyrt-vm-initramfs.XXXXXX") || return 1
        mkdir -p "$tmp/bin" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/lib/modules"
        cp "$BUSYBOX" "$tmp/bin/busybox" && cp "$GUEST_INIT" "$tmp/init" && chmod 755 "$tmp/init" || return 1
        : > "$tmp/lib/modules/order"
        while read -r rel; do
            [ -n "$rel" ] || continue
            base=${rel##*/}; base=${base%%.ko*}.ko
            case "$rel" in
                *.ko) cp "$KMODS/$rel" "$tmp/lib/modules/$base" ;;
                *.ko.xz) xz -dc "$KMODS/$rel" > "$tmp/lib/modules/$base" ;;
                *.ko.zst) zstd -qdc "$KMODS/$rel" > "$tmp/lib/modules/$base" ;;
                *.ko.gz) gzip -dc "$KMODS/$rel" > "$tmp/lib/modules/$base" ;;
            esac || { rm -rf "$tmp"; return 1; }
            echo "$base" >> "$tmp/lib/modules/order"
        done < <(module_closure $MODULES)
        if ! (cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$img.$$"; then
            rm -rf "$tmp" "$img.$$"; return 1
        fi
        rm -rf "$tmp"
        mv "$img.$$" "$img" || return 1
        find "$CACHE" -maxdepth 1 -name "initramfs-$KVER-*" ! -name "${img##*/}" -delete 2>/dev/null
    fi
    echo "$img"
}

extract_vmlinux() {   # -> path of the cached uncompressed ELF vmlinux (PVH boot), or the bzImage
    local bz=/boot/vmlinuz-$KVER out off tool magic
    out=$CACHE/vmlinux-$KVER-$(stat -c %s.%Y "$bz")
    if [ -s "$out" ]; then echo "$out"; return 0; fi
    if grep -qx 'CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null; then
        for tool in xz zstd gzip; do
            case $tool in xz) magic='\xfd7zXZ\x00' ;; zstd) magic='\x28\xb5\x2f\xfd' ;; gzip) magic='\x1f\x8b\x08\x00' ;; esac
            for off in $(LC_ALL=C grep -obUaP "$magic" "$bz" | cut -d: -f1 | head -5); do
                tail -c +$((off + 1)) "$bz" | $tool -dcq > "$out.$$" 2>/dev/null
                if [ "$(head -c 4 "$out.$$" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
                    mv "$out.$$" "$out"
                    find "$CACHE" -maxdepth 1 -name "vmlinux-$KVER-*" ! -name "${out##*/}" -delete 2>/dev/null
                    echo "$out"; return 0
                fi
            done
        done
        rm -f "$out.$$"
        msg "could not extract vmlinux from $bz; booting the bzImage (slower)"
    fi
    echo "$bz"
}

INITRAMFS=$(build_initramfs) || die "cannot build the initramfs"
KERNEL=$(extract_vmlinux)

# ---------------------------------------------------------------- per-run state
STATE=$(mktemp -d "${TMPDIR:-/tmp}/pyrt-vm.XXXXXX") || die "mktemp failed"
chmod 0755 "$STATE"
QPID= ; READERS=()
cleanup() {
    trap - EXIT INT TERM HUP
    local p
    if [ -n "$QPID" ] && kill "$QPID" 2>/dev/null; then   # timeout(1) passes the TERM on to qemu
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            kill -0 "$QPID" 2>/dev/null || break; sleep 0.1
        done
        if kill -0 "$QPID" 2>/dev/null; then pkill -KILL -P "$QPID"; kill -KILL "$QPID" 2>/dev/null; fi
    fi
    for p in "${READERS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'msg "interrupted"; exit 130' INT
trap 'msg "terminated"; exit 143' TERM
trap 'exit 129' HUP

# Shared read-write at the same path, as "path=9p-cache-mode". cache=mmap reads through to the host
# (edits made on the host during the run are seen); the venv changes rarely and holds most of what
# Python imports, so it gets the page cache (cache=loose, about 2x faster imports under TCG).  So does
# the pyruntime package (every runtime call imports it; built before the VM starts): read through
# cache=mmap, a `state` took 2.3x as long as the same code read from the cached host root (945 against
# 403 ms, systemd VM), which made pyruntime's lifecycle calls look slower against runc than they are.
SHARES=("$PROJECT=${VM_RW_CACHE:-mmap}")
[ -d "$PROJECT/.venv" ] && [ "${VM_VENV_CACHE:-loose}" != off ] && SHARES+=("$PROJECT/.venv=${VM_VENV_CACHE:-loose}")
[ -d "$PROJECT/pyruntime" ] && [ "${VM_SRC_CACHE:-loose}" != off ] \
    && SHARES+=("$PROJECT/pyruntime=${VM_SRC_CACHE:-loose}")
if [ -n "${VM_RW_DIRS:-}" ]; then
    IFS=: read -r -a extra <<< "$VM_RW_DIRS"
    for d in "${extra[@]}"; do
        [ -n "$d" ] && { d=$(cd "$d" && pwd -P) || die "VM_RW_DIRS: no such dir: $d"; SHARES+=("$d=mmap"); }
    done
fi
for s in "${SHARES[@]}"; do
    [[ "$s" =~ ^/[A-Za-z0-9._/+-]*=(mmap|loose|none|fscache)$ ]] \
        || die "shared dir path or cache mode not supported (paths: [A-Za-z0-9._/+-]): $s"
done
case "${VM_INIT:-shell}" in shell|systemd) ;; *) die "VM_INIT must be shell or systemd" ;; esac
if [ "${VM_INIT:-shell}" = systemd ] && [ ! -x /lib/systemd/systemd ]; then
    die "VM_INIT=systemd: /lib/systemd/systemd not installed (apt-get install systemd dbus)"
fi
case "${VM_CGROUP:-v2}" in
    v2) CG_CMDLINE="cgroup_no_v1=all" ;;
    hybrid) CG_CMDLINE="systemd.unified_cgroup_hierarchy=0" ;;
    legacy) CG_CMDLINE="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
    *) die "VM_CGROUP must be v2, hybrid or legacy" ;;
esac
[ "${VM_CGROUP:-v2}" = v2 ] || [ "${VM_INIT:-shell}" = systemd ] \
    || die "VM_CGROUP=${VM_CGROUP}: needs VM_INIT=systemd (systemd mounts the v1 hierarchies)"
printf 'VM_SHARES="%s"\nVM_HOSTNAME=pyrt-vm\nVM_INIT=%s\nVM_CGROUP=%s\nVM_SYSTEMD_ARGS="%s"\n' "${SHARES[*]}" \
    "${VM_INIT:-shell}" "${VM_CGROUP:-v2}" "${CG_CMDLINE//cgroup_no_v1=all/}" > "$STATE/config"

{
    echo '#!/bin/bash'
    passed=" ${VM_PASS_ENV:-} "
    while IFS= read -r name; do
        case "$name" in
            PATH|HOME|LANG|LC_*|TZ|CI|PYTHON*|PYTEST_*|PYRUNTIME_*) ;;
            *) [[ "$passed" == *" $name "* ]] || continue ;;
        esac
        printf 'export %s=%q\n' "$name" "${!name}"
    done < <(compgen -e)
    [ -n "${HOME:-}" ] || echo 'export HOME=/root'
    [ -n "${PATH:-}" ] || echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    echo 'export PYRUNTIME_TEST_VM=1 TERM=dumb'
    # compiling (and pytest's assert rewriting) is 20-50x slower under TCG: keep the bytecode
    # (in the gitignored __pycache__ dirs) even when the host says PYTHONDONTWRITEBYTECODE
    [ "${VM_WRITE_BYTECODE:-1}" = 1 ] && echo 'unset PYTHONDONTWRITEBYTECODE'
    printf 'cd %q || exit 126\n' "$(pwd -P)"
    printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$STATE/command"

# ---------------------------------------------------------------- launch
case "${VM_ACCEL:-tcg}" in
    tcg) ACCEL=(-accel tcg,thread=multi,tb-size=256 -cpu max) ;;
    kvm) ACCEL=(-accel kvm -cpu host) ;;
    *) die "VM_ACCEL must be tcg or kvm" ;;
esac
CMDLINE="console=ttyS0 quiet loglevel=4 panic=-1 oops=panic rdinit=/init $CG_CMDLINE psi=1"
CMDLINE+=" random.trust_cpu=on mitigations=off tsc=reliable no_timer_check 8250.nr_uarts=1 ${VM_EXTRA_CMDLINE:-}"

mkfifo "$STATE/console.fifo" "$STATE/stdout.fifo" "$STATE/stderr.fifo" || die "mkfifo failed"
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
    "${ACCEL[@]}" -machine q35 -m "${VM_MEM:-2G}" -smp "${VM_CPUS:-2}"
    -kernel "$KERNEL" -initrd "$INITRAMFS" -append "$CMDLINE"
    -chardev "file,id=con,path=$STATE/console.fifo" -serial chardev:con
    -device virtio-serial-pci,id=vser
    -chardev "file,id=out,path=$STATE/stdout.fifo" -device virtserialport,bus=vser.0,chardev=out,name=pyrt.stdout
    -chardev "file,id=err,path=$STATE/stderr.fifo" -device virtserialport,bus=vser.0,chardev=err,name=pyrt.stderr
    -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -fsdev "local,id=state,path=$STATE,security_model=none"
    -device virtio-9p-pci,fsdev=state,mount_tag=pyrtstate
    -blockdev driver=null-co,node-name=scratch,size=1073741824,read-zeroes=on
    -device virtio-blk-pci,drive=scratch
    -device virtio-rng-pci)
n=0
for s in "${SHARES[@]}"; do
    QEMU+=(-fsdev "local,id=rw$n,path=${s%=*},security_model=passthrough,multidevs=remap"
           -device "virtio-9p-pci,fsdev=rw$n,mount_tag=pyrtrw$n")
    n=$((n + 1))
done
[ -n "${VM_QEMU_ARGS:-}" ] && { read -r -a qa <<< "$VM_QEMU_ARGS"; QEMU+=("${qa[@]}"); }

# Readers first: qemu opens the FIFOs for writing at start-up and blocks until they have a reader.
cat "$STATE/stdout.fifo" & READERS+=($!)
cat "$STATE/stderr.fifo" >&2 & READERS+=($!)
(   # timestamp each console line on the host clock, for the boot-time measurement
    while IFS= read -r line; do
        line=${line%$'\r'}
        printf '%s %s\n' "${EPOCHREALTIME/,/.}" "$line" >> "$STATE/console.log"
        [ "${VM_VERBOSE:-0}" = 1 ] && printf 'console| %s\n' "$line" >&2
    done < "$STATE/console.fifo"
) & READERS+=($!)

T_QEMU=$(now)
timeout --kill-after=10 "${VM_TIMEOUT:-900}" "${QEMU[@]}" < /dev/null > "$STATE/qemu.log" 2>&1 &
QPID=$!
wait "$QPID"; QRC=$?
QPID=
T_END=$(now)
for p in "${READERS[@]}"; do   # let the readers drain (they see EOF once qemu is gone)
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
[ -n "${VM_CONSOLE_LOG:-}" ] && cp "$STATE/console.log" "$VM_CONSOLE_LOG" 2>/dev/null

# ---------------------------------------------------------------- result
mark() { awk -v pat="PYRT-VM: $1" 'index($0, pat) { print $1; exit }' "$STATE/console.log" 2>/dev/null; }
since() { [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }' || echo "?"; }
T_CMD=$(mark "command start"); T_CMD_END=$(mark "command end")
msg "timing: boot $(since "$T_QEMU" "$T_CMD") (qemu start -> command start), command $(since "${T_CMD:-}" "$T_CMD_END"), VM total $(since "$T_QEMU" "$T_END"), prep $(since "$T_START" "$T_QEMU")"

RC=$(cat "$STATE/rc" 2>/dev/null)
[[ "$RC" =~ ^[0-9]+$ ]] && exit "$RC"
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    msg "VM killed after VM_TIMEOUT=${VM_TIMEOUT:-900}s (hung guest or command too slow)"
    RC=124
else
    msg "VM failed: no exit status came back (qemu exit status $QRC)"
    RC=125
fi
[ -s "$STATE/qemu.log" ] && sed 's/^/  qemu| /' "$STATE/qemu.log" >&2
msg "guest console (last 30 lines):"
tail -n 30 "$STATE/console.log" 2>/dev/null | cut -d' ' -f2- | sed 's/^/  console| /' >&2
exit $RC
