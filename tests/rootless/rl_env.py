"""What the rootless conftest and tests share (a uniquely named module: see tests/pyrt_testenv.py)."""
from __future__ import annotations

SUB_COUNT = 65536


def mappings(env, kind: str) -> tuple[list[dict], list[dict]]:
    """(uidMappings, gidMappings): "single" = the caller's own ids; "multi" = those plus the subid range."""
    u = env.owner
    if kind == "single":
        return ([{"containerID": 0, "hostID": u.uid, "size": 1}], [{"containerID": 0, "hostID": u.gid, "size": 1}])
    return ([{"containerID": 0, "hostID": u.uid, "size": 1},
             {"containerID": 1, "hostID": u.subuid, "size": SUB_COUNT}],
            [{"containerID": 0, "hostID": u.gid, "size": 1},
             {"containerID": 1, "hostID": u.subgid, "size": SUB_COUNT}])


MAPPINGS = ("single", "multi")
