"""The container's filesystem: mounts and options, propagation, devices, masked/readonly paths,
pivot_root and --no-pivot, and symlinks in a hostile rootfs that must not redirect anything."""
from __future__ import annotations

import os
import shutil

import pytest
from pyrt_testenv import ROOTFS


def run_out(rt, b, cid="r", *extra) -> str:
    return rt.out("run", *extra, "--bundle", b, cid)


def test_bind_mount_ro_and_rw(rt, make_bundle, tmp_path):
    src = tmp_path / "share"
    src.mkdir()
    (src / "f").write_text("hostdata")

    def edit(c):
        c["mounts"] += [{"destination": "/ro", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
                        {"destination": "/rw", "type": "bind", "source": str(src), "options": ["bind"]}]
    b = make_bundle(["sh", "-c", "cat /ro/f; touch /ro/x 2>/dev/null && echo ro-writable; echo hi > /rw/new; "
                           "grep -E ' /(ro|rw) ' /proc/self/mountinfo"], edit=edit)
    out = run_out(rt, b)
    assert out.startswith("hostdata") and "ro-writable" not in out
    assert (src / "new").read_text() == "hi\n"
    ro_line = next(line for line in out.splitlines() if " /ro " in line)
    assert " ro," in ro_line or " ro " in ro_line


def test_file_bind_and_tmpfs_options(rt, make_bundle, tmp_path):
    f = tmp_path / "hosts"
    f.write_text("127.0.0.1 pyrt\n")

    def edit(c):
        c["mounts"] += [{"destination": "/etc/hosts2", "type": "bind", "source": str(f), "options": ["bind", "ro"]},
                        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                         "options": ["size=1m", "mode=1700", "noexec"]}]
    out = run_out(rt, make_bundle(["sh", "-c", "cat /etc/hosts2; stat -c %a /scratch; grep ' /scratch ' /proc/mounts"],
                                  edit=edit))
    lines = out.splitlines()
    assert lines[0] == "127.0.0.1 pyrt" and lines[1] == "1700"
    assert "noexec" in lines[2] and "size=1024k" in lines[2]


def test_masked_and_readonly_paths(rt, make_bundle):
    out = run_out(rt, make_bundle(["sh", "-c", "cat /proc/kcore | wc -c; ls /proc/acpi | wc -l; "
                                   "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable; "
                                   "echo done"]))
    assert out.split() == ["0", "0", "done"]


def test_cannot_remount_proc_sys_rw(rt, make_bundle):
    out = run_out(rt, make_bundle(["sh", "-c", "mount -o remount,rw /proc/sys 2>&1; mount -o remount,rw /sys 2>&1;"
                                   " umount /proc/kcore 2>&1; grep ' /proc/sys ' /proc/mounts"]))
    assert "proc /proc/sys proc ro" in out, out


def test_devices_default_and_listed(rt, make_bundle):
    def edit(c):
        c["linux"]["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o644,
                                  "uid": 1000, "gid": 1000}]
    out = run_out(rt, make_bundle(["sh", "-c", "stat -c '%n %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/tty "
                                   "/dev/random /dev/urandom /dev/mydev; readlink /dev/ptmx; readlink /dev/fd; "
                                   "head -c 4 /dev/mydev | wc -c"], edit=edit))
    assert out.splitlines() == ["/dev/null 1:3 666 0:0", "/dev/zero 1:5 666 0:0", "/dev/full 1:7 666 0:0",
                                "/dev/tty 5:0 666 0:0", "/dev/random 1:8 666 0:0", "/dev/urandom 1:9 666 0:0",
                                "/dev/mydev 1:5 644 1000:1000", "pts/ptmx", "/proc/self/fd", "4"]


def test_no_pivot(rt, make_bundle):
    out = run_out(rt, make_bundle(["sh", "-c", "cat /etc/hostname; ls /"]), "np", "--no-pivot")
    assert out.splitlines()[0] == "pyruntime" and "bin" in out.split()


def test_rootfs_propagation_and_mount_propagation(rt, make_bundle, tmp_path):
    def edit(c):
        c["linux"]["rootfsPropagation"] = "rslave"
        c["mounts"].append({"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]})
    out = run_out(rt, make_bundle(["sh", "-c", "grep ' /shared ' /proc/self/mountinfo"], edit=edit))
    assert "shared:" in out


@pytest.fixture
def hostile_rootfs(tmp_path):
    """A copy of the busybox rootfs whose mount targets and /dev/null are symlinks to a host sentinel."""
    root = tmp_path / "rootfs"
    shutil.copytree(ROOTFS, root, symlinks=True)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "file").write_text("untouched")
    os.symlink(str(sentinel), root / "escape")                      # absolute symlink to the host
    os.symlink("../../../../../../../../" + str(sentinel).lstrip("/"), root / "escape2")
    os.symlink(str(sentinel / "file"), root / "escapefile")
    return root, sentinel


def test_hostile_symlink_mount_destinations(rt, make_bundle, hostile_rootfs):
    root, sentinel = hostile_rootfs

    def edit(c):
        c["root"]["path"] = str(root)
        c["root"]["readonly"] = False
        c["mounts"] += [{"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"},
                        {"destination": "/escape2/sub2", "type": "tmpfs", "source": "tmpfs"}]
    rt("run", "--bundle", make_bundle(["sh", "-c", "echo x > /escape/sub/f"], edit=edit), "h")
    # the symlinks resolved inside the rootfs: the mounts and dirs landed under rootfs/<sentinel path>
    assert sorted(os.listdir(sentinel)) == ["file"]
    assert os.path.isdir(os.path.join(str(root), str(sentinel).lstrip("/"), "sub"))


def test_hostile_dev_null_symlink_for_masks(rt, make_bundle, hostile_rootfs):
    """No fresh /dev mount and /dev/null a symlink to a host file: masking must refuse, not mount over it."""
    root, sentinel = hostile_rootfs
    os.makedirs(root / "dev", exist_ok=True)
    os.symlink(str(sentinel / "file"), root / "dev" / "null")

    def edit(c):
        c["root"]["path"] = str(root)
        c["mounts"] = [m for m in c["mounts"] if not m["destination"].startswith("/dev")]
        c["linux"]["maskedPaths"] = ["/escapefile", "/proc/kcore"]
    cp = rt("run", "--bundle", make_bundle(["cat", "/escapefile"], edit=edit), "h2", check=False)
    assert cp.returncode == 1 and b"/dev/null" in cp.stderr
    assert (sentinel / "file").read_text() == "untouched"
    with open("/proc/self/mountinfo") as f:
        assert str(sentinel) not in f.read()


def test_masked_symlink_masks_inside(rt, make_bundle, hostile_rootfs):
    root, sentinel = hostile_rootfs

    def edit(c):
        c["root"]["path"] = str(root)
        c["linux"]["maskedPaths"] = ["/escapefile"]
    out = rt.out("run", "--bundle", make_bundle(["sh", "-c", "cat /escapefile 2>&1; echo end"], edit=edit), "h3")
    assert (sentinel / "file").read_text() == "untouched"
    assert "untouched" not in out
