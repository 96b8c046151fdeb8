"""Write a `pyruntime` launcher: an interpreter run isolated (-I) and without site (-S), with exactly
the given directories on sys.path.  Skipping site saves the .pth scan on every call, and shims call
`state`/`kill`/`delete` constantly.

    mklauncher.py ROOT OUT                          the checkout's bin/pyruntime: this interpreter (the
                                                    .venv's), ROOT and the venv's site-packages
    mklauncher.py --python EXE --path DIR... OUT    an installed launcher (mk/install.mk): EXE resolved to
                                                    its real file (python3.11: the ABI the lib was built for)
"""
import os
import sys
import sysconfig


def launcher(exe: str, paths: list[str]) -> str:
    return (f"#!{exe} -IS\nimport sys\nsys.path[:0] = {paths!r}\n"
            "from pyruntime.cli import launch\nlaunch()\n")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--python":
        exe, rest = argv[1], argv[2:]
        paths = []
        while rest and rest[0] == "--path":
            paths.append(rest[1])
            rest = rest[2:]
        out, = rest
        exe = os.path.realpath(exe)
    else:
        root, out = argv
        exe = os.path.realpath(sys.executable)
        paths = [root, sysconfig.get_paths()["purelib"]]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as f:
        f.write(launcher(exe, paths))
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv[1:])
