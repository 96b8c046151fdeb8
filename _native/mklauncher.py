"""Write the `pyruntime` launcher: the venv's real interpreter run isolated (-I) and without site
(-S), with exactly the project and the venv's site-packages on sys.path.  Skipping site saves the
.pth scan on every call, and shims call `state`/`kill`/`delete` constantly."""
import os
import sys
import sysconfig

root, out = sys.argv[1], sys.argv[2]
exe = os.path.realpath(sys.executable)
site = sysconfig.get_paths()["purelib"]
text = (f"#!{exe} -IS\nimport sys\nsys.path[:0] = [{root!r}, {site!r}]\n"
        "from pyruntime.cli import main\nsys.exit(main())\n")
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out + ".tmp", "w") as f:
    f.write(text)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
