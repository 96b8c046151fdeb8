"""bridge-net: the OCI hook pair shipped with pyruntime (see main.py and docs/networking.md)."""
