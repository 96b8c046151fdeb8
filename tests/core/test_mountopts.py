"""Mount options of config.md that mount(2) cannot express, and nothing dropped silently (issue 11):
recursive attributes (rro, rnoexec...), nosymfollow, idmap/ridmap with the mount's mappings,
tmpcopyup; an unknown option of a bind mount is an error naming it; `pyruntime features` lists
exactly what the planner implements and config.md's whole option table."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from pyrt_testenv import RUNC, runc_control



@pytest.fixture
def tree(tmp_path):
    """A host directory with a tmpfs submount (mounted here, unmounted after the test)."""
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True)
    try:
        (src / "top").write_text("top\n")
        (src / "sub" / "x").write_text("sub\n")
        (src / "sub" / "run.sh").write_text("#!/bin/sh\necho executed\n")
        (src / "sub" / "run.sh").chmod(0o755)
        yield src
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)


def _mount(src, dest: str, opts: list[str], **extra) -> dict:
    return dict({"destination": dest, "type": "bind", "source": str(src), "options": opts}, **extra)


def test_rro_reaches_submounts(rt, make_bundle, tree):
    """rbind,rro: read-only including the submount; rbind,ro alone leaves the submount writable
    (which is why rro exists).  runc, where it supports rro, is the control."""
    script = "for f in /mnt/top /mnt/sub/x /home/top /home/sub/x; do (echo w >> $f) 2>/dev/null && echo $f:rw || echo $f:ro; done"
    b = make_bundle(["sh", "-c", script], edit=lambda c: c["mounts"].extend([
        _mount(tree, "/mnt", ["rbind", "rro"]), _mount(tree, "/home", ["rbind", "ro"])]))
    out = rt.out("run", "--bundle", b, "rro").split()
    assert out == ["/mnt/top:ro", "/mnt/sub/x:ro", "/home/top:ro", "/home/sub/x:rw"], out
    if RUNC:
        with runc_control() as r:
            cp = r("run", "--bundle", b, "rro-runc", check=False)
            if cp.returncode == 0:
                assert cp.stdout.decode().split()[:2] == ["/mnt/top:ro", "/mnt/sub/x:ro"]


def test_recursive_noexec_nosuid_nodev(rt, make_bundle, tree):
    b = make_bundle(["sh", "-c", "/mnt/sub/run.sh 2>/dev/null || echo refused; /home/sub/run.sh; "
                                 "grep -E ' /mnt/sub ' /proc/self/mountinfo"],
                    edit=lambda c: c["mounts"].extend([
                        _mount(tree, "/mnt", ["rbind", "rnoexec", "rnosuid", "rnodev"]),
                        _mount(tree, "/home", ["rbind"])]))
    out = rt.out("run", "--bundle", b, "rnx")
    lines = out.splitlines()
    assert lines[0] == "refused" and lines[1] == "executed", out
    flags = lines[2].split()[5].split(",")
    assert {"nosuid", "nodev", "noexec"} <= set(flags), lines[2]


def test_rrw_after_ro_source(rt, make_bundle, tmp_path):
    """rrw clears read-only below the mount (the last option wins, as with mount(8))."""
    src = tmp_path / "s"
    src.mkdir()
    b = make_bundle(["sh", "-c", "touch /mnt/f && echo writable"],
                    edit=lambda c: c["mounts"].append(_mount(src, "/mnt", ["rbind", "rro", "rrw"])))
    assert rt.out("run", "--bundle", b, "rrw") == "writable\n"


def test_nosymfollow(rt, make_bundle, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "target").write_text("reached\n")
    os.symlink("target", src / "link")
    b = make_bundle(["sh", "-c", "cat /mnt/link 2>&1; cat /home/link"],
                    edit=lambda c: c["mounts"].extend([_mount(src, "/mnt", ["bind", "nosymfollow"]),
                                                       _mount(src, "/home", ["bind"])]))
    out = rt.out("run", "--bundle", b, "nsf").splitlines()
    assert "reached" not in out[0] and "many levels" in out[0].lower() or "loop" in out[0].lower(), out
    assert out[1] == "reached"


@pytest.mark.parametrize("opt", ["idmap", "ridmap"])
def test_idmap_bind_mount(rt, make_bundle, tmp_path, opt):
    """A file owned by host uid/gid 1000 shows as 2000 through a mount id-mapped 1000 -> 2000 (the
    mount's own uidMappings/gidMappings: containerID = id on the source filesystem, hostID = id seen
    through the mount), and a file created through the mount as 2000 lands as 1000 on the host."""
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 1000, 1000)
    os.chown(src, 1000, 1000)
    maps = [{"containerID": 1000, "hostID": 2000, "size": 1}]
    b = make_bundle(["sh", "-c", "stat -c '%u %g' /mnt/f /home/f; touch /mnt/new"],
                    edit=lambda c: (c["process"].__setitem__("user", {"uid": 2000, "gid": 2000}),
                                    c["mounts"].extend([
                                        _mount(src, "/mnt", ["rbind", opt], uidMappings=maps, gidMappings=maps),
                                        _mount(src, "/home", ["rbind"])])))
    out = rt.out("run", "--bundle", b, f"idm-{opt}")
    assert out.split("\n")[:2] == ["2000 2000", "1000 1000"], out
    st = os.stat(src / "new")
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_idmap_without_mappings_or_userns_is_an_error(rt, make_bundle, tmp_path):
    b = make_bundle(["true"], edit=lambda c: c["mounts"].append(_mount(tmp_path, "/mnt", ["bind", "idmap"])))
    cp = rt("create", "--bundle", b, "idm-bad", check=False)
    assert cp.returncode == 1 and b"options: idmap needs" in cp.stderr, cp.stderr


def test_tmpcopyup(rt, make_bundle):
    """tmpcopyup: the tmpfs starts with the destination's contents (files, modes, symlinks); writes
    stay in the tmpfs."""
    from pyrt_testenv import ROOTFS
    before = sorted(os.listdir(os.path.join(ROOTFS, "etc")))
    b = make_bundle(["sh", "-c", "head -1 /etc/passwd; stat -c '%a' /etc/passwd; echo new > /etc/added; "
                                 "grep -c tmpfs /proc/self/mountinfo >/dev/null; grep ' /etc ' /proc/self/mountinfo"],
                    edit=lambda c: c["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                                       "options": ["tmpcopyup", "nosuid", "mode=755"]}))
    out = rt.out("run", "--bundle", b, "tcu").splitlines()
    assert out[0].startswith("root:x:0:0") and out[1] == oct(os.stat(os.path.join(ROOTFS, "etc/passwd")).st_mode
                                                             & 0o777)[2:]
    assert " - tmpfs " in out[2]
    assert sorted(os.listdir(os.path.join(ROOTFS, "etc"))) == before


@pytest.mark.parametrize("opts,mtype,msg", [
    (["bind", "foo"], "bind", '"foo" is not supported'),
    (["rbind", "size=10m"], "bind", '"size=10m" is not supported'),
    (["tmpcopyup"], "proc", '"tmpcopyup" needs "type": "tmpfs"'),
    (["idmap"], "tmpfs", "idmap/ridmap need a bind mount"),
])
def test_unsupported_option_names_it(rt, make_bundle, tmp_path, opts, mtype, msg):
    def edit(c):
        c["mounts"].append({"destination": "/x", "type": mtype, "source": str(tmp_path), "options": opts})
    b = make_bundle(["true"], edit=edit)
    n = len(json.load(open(os.path.join(b, "config.json")))["mounts"]) - 1
    cp = rt("create", "--bundle", b, "uo", check=False)
    err = cp.stderr.decode()
    assert cp.returncode == 1 and f"mounts[{n}]" in err and msg in err and "Traceback" not in err, err


SPEC_OPTIONS = {  # config.md "Mounts" option table, runtime-spec 1.3.0
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion", "lazytime", "loud",
    "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime", "nomand", "norelatime",
    "nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev", "rdiratime", "relatime",
    "remount", "rexec", "rnoatime", "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid",
    "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime", "rsuid",
    "rsymfollow", "runbindable", "rw", "shared", "silent", "slave", "strictatime", "suid", "symfollow", "sync",
    "tmpcopyup", "unbindable", "idmap", "ridmap",
}


def test_features_lists_exactly_the_implemented_options(rt):
    """`pyruntime features` mountOptions == the planner's table, which covers config.md's table, and
    every listed option is accepted by the planner for a bind mount (nothing listed is refused)."""
    from pyruntime import mountopts
    doc = json.loads(rt.out("features"))
    assert doc["mountOptions"] == mountopts.MOUNT_OPTIONS
    assert SPEC_OPTIONS <= set(doc["mountOptions"]), SPEC_OPTIONS - set(doc["mountOptions"])
    for o in doc["mountOptions"]:
        mountopts.parse([o], "mounts[0]", bind=True)
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is True


def test_rbind_keeps_read_only_submounts(rt, make_bundle, tree):
    """rbind of a tree whose submount is read-only: the submount stays read-only in the container
    (its flags are copied, and a remount of the top for other flags does not touch it), the top
    stays writable."""
    subprocess.run(["mount", "-o", "remount,ro", str(tree / "sub")], check=True)
    script = ("for f in /mnt/top /mnt/sub/x; do (echo w >> $f) 2>/dev/null && echo $f:rw || echo $f:ro; done; "
              "grep -E ' /mnt/sub ' /proc/self/mountinfo | cut -d' ' -f6")
    b = make_bundle(["sh", "-c", script],
                    edit=lambda c: c["mounts"].append(_mount(tree, "/mnt", ["rbind", "nosuid"])))
    out = rt.out("run", "--bundle", b, "rbro").split()
    assert out[:2] == ["/mnt/top:rw", "/mnt/sub/x:ro"] and out[2].startswith("ro"), out


def test_idmap_in_a_user_namespace(rt, make_bundle):
    """The Kubernetes case: a container in a user namespace (root = host 100000) and a volume owned by
    host root.  Through a mount id-mapped 0 -> 100000 the container sees its files as its own root's
    and what it creates lands on disk as host root; through a plain bind they are nobody's."""
    import tempfile
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("kernel without user namespaces")
    top = tempfile.mkdtemp(prefix="pyrt-idmap-", dir="/var/tmp")     # reachable for host uid 100000
    try:
        os.chmod(top, 0o755)
        vol = os.path.join(top, "vol")
        os.mkdir(vol, 0o755)
        with open(os.path.join(vol, "f"), "w") as f:
            f.write("x")
        maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]

        def edit(c):
            c["linux"]["namespaces"].append({"type": "user"})
            c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = maps
            # existing mount points: the container's root may not create any in a rootfs owned by host root
            c["mounts"] += [_mount(vol, "/home", ["rbind", "idmap"], uidMappings=maps, gidMappings=maps),
                            _mount(vol, "/mnt", ["rbind"])]
        out = rt.out("run", "--bundle", make_bundle(
            ["sh", "-c", "stat -c '%u:%g' /home/f /mnt/f; touch /home/new && echo created"], edit=edit), "idu")
        assert out.split() == ["0:0", "65534:65534", "created"], out
        st = os.stat(os.path.join(vol, "new"))
        assert (st.st_uid, st.st_gid) == (0, 0)
    finally:
        shutil.rmtree(top, ignore_errors=True)
