"""linux.memoryPolicy (runtime-spec 1.3): validated here into set_mempolicy(2)'s arguments, applied by
the C core in the container process before the user switch (a policy survives execve).

Node lists like "0-3,7" are parsed by hand (no `re` on the create path).
"""
from __future__ import annotations

from .errors import ConfigError

# linux/mempolicy.h (stable ABI)
MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
         "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_NUMA_BALANCING": 1 << 13}
NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED_MANY")
MAX_NODES = 1024          # the plan's nodemask: 16 x 64 bits


def parse_nodes(text: str, field: str) -> list[int]:
    nodes: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ConfigError(field, f"invalid node list {text!r} (expected a list like \"0-3,7\")")
        a, b = int(lo), int(hi) if dash else int(lo)
        if a > b or b >= MAX_NODES:
            raise ConfigError(field, f"invalid node range {part!r} (nodes 0..{MAX_NODES - 1})")
        nodes.extend(range(a, b + 1))
    return nodes


def fill(plan, policy: dict, field: str = "linux.memoryPolicy") -> None:
    """Set plan->mempolicy_mode/_nodes/_maxnode from config.json's linux.memoryPolicy."""
    if not isinstance(policy, dict):
        raise ConfigError(field, "must be an object")
    mode = policy.get("mode")
    if not isinstance(mode, str) or mode not in MODES:
        raise ConfigError(f"{field}.mode", f'unknown memory policy mode "{mode}"')
    flags = 0
    for i, name in enumerate(policy.get("flags") or []):
        if not isinstance(name, str) or name not in FLAGS:
            raise ConfigError(f"{field}.flags[{i}]", f'unknown memory policy flag "{name}"')
        flags |= FLAGS[name]
    if flags & FLAGS["MPOL_F_STATIC_NODES"] and flags & FLAGS["MPOL_F_RELATIVE_NODES"]:
        raise ConfigError(f"{field}.flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    nodes_text = policy.get("nodes") or ""
    if not isinstance(nodes_text, str):
        raise ConfigError(f"{field}.nodes", "must be a string")
    nodes = parse_nodes(nodes_text, f"{field}.nodes")
    if mode in NO_NODES and nodes:
        raise ConfigError(f"{field}.nodes", f"{mode} takes no nodes")
    if mode in NEED_NODES and not nodes:
        raise ConfigError(f"{field}.nodes", f"{mode} needs at least one node")
    for n in nodes:
        plan.mempolicy_nodes[n // 64] |= 1 << (n % 64)
    plan.mempolicy_maxnode = (max(nodes) + 2) if nodes else 0
    plan.mempolicy_mode = MODES[mode] | flags
