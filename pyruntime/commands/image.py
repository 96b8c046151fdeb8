"""pyruntime image {unpack,ls,inspect,rm,prune,pull}: OCI image layouts, archives, registries and the
layer store that `run --image` uses (ROOT/.images or --image-store DIR)."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import RuntimeFailure

# sub-subcommands need the real argparse; image is not on a shim's hot path
FULL_ARGPARSE = True
HELP = "unpack, list and inspect OCI image layouts and archives"


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="image_command", metavar="{unpack,ls,inspect,rm,prune,pull}")
    sub.required = True
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--image-store", default=None, metavar="DIR",
                       help="the layer store (default: ROOT/.images, ROOT from the global --root)")
    u = sub.add_parser("unpack", help="unpack an image into a bundle (rootfs + config.json)",
                       description="Unpack LAYOUT_DIR or ARCHIVE.tar (optionally :REF) into BUNDLE_DIR.")
    u.add_argument("--ref", default=None, help="image name (org.opencontainers.image.ref.name or a "
                                               "docker-save tag); default: the only image")
    u.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    u.add_argument("--uid-map", action="append", default=[], metavar="C:H:N",
                   help="shift file owners: container uid C..C+N-1 -> host uid H.. (repeatable)")
    u.add_argument("--gid-map", action="append", default=[], metavar="C:H:N", help="same for gids")
    u.add_argument("--max-expansion", type=float, default=None, metavar="RATIO",
                   help="a layer may unpack to RATIO x its compressed size, at least 64 MiB (default 50; 0: no limit)")
    u.add_argument("source", metavar="LAYOUT_DIR|ARCHIVE.tar[:REF]")
    u.add_argument("bundle", metavar="BUNDLE_DIR")
    ls = sub.add_parser("ls", parents=[store],
                        help="list the images of the store, or (refs and platforms) of a layout or archive")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("source", metavar="LAYOUT|ARCHIVE", nargs="?")
    i = sub.add_parser("inspect", parents=[store], help="print the resolved manifest and config as JSON")
    i.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    i.add_argument("source", metavar="LAYOUT[:REF]|ARCHIVE[:REF]|STORED-IMAGE")
    rm = sub.add_parser("rm", parents=[store], help="remove images from the store (their layers: image prune)")
    rm.add_argument("--force", "-f", action="store_true", help="even if containers use them")
    rm.add_argument("refs", nargs="+", metavar="NAME|DIGEST")
    sub.add_parser("prune", parents=[store], help="remove the layers no stored image and no container uses")
    pl = sub.add_parser("pull", parents=[store], help="pull an image from a registry into LAYOUT or the store",
                        description="REF: [docker://][REGISTRY[:PORT]/]REPO[:TAG][@DIGEST]; short names are "
                                    "resolved with registries.conf as podman does (docker.io by default).")
    add_pull_flags(pl)
    pl.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    pl.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    pl.add_argument("ref", metavar="REF")
    pl.add_argument("layout", metavar="LAYOUT", nargs="?",
                    help="OCI layout to pull into (its ref name: the tag); default: the image store")


def add_pull_flags(p) -> None:
    p.add_argument("--tls-verify", default=None, choices=["true", "false"],
                   help="false: accept any certificate and plain HTTP (default: verify; registries.conf "
                        "insecure entries are not verified)")
    p.add_argument("--cert-dir", default=None, help="CA (*.crt) and client (*.cert, *.key) files "
                                                    "(default: certs.d/HOST[:PORT] of containers and docker)")
    p.add_argument("--authfile", default=None, help="credentials file (auth.json or docker config.json)")
    p.add_argument("--creds", default=None, metavar="USER:PASSWORD", help="credentials (never printed)")
    p.add_argument("--registries-conf", default=None, help="registries.conf to use")


def pull_opts(args: argparse.Namespace) -> dict:
    tv = getattr(args, "tls_verify", None)
    return {"tls_verify": None if tv is None else tv == "true", "cert_dir": getattr(args, "cert_dir", None),
            "creds": getattr(args, "creds", None), "authfile": getattr(args, "authfile", None),
            "registries_conf": getattr(args, "registries_conf", None)}


def _pull(args: argparse.Namespace) -> int:
    from .. import log
    if args.layout is None:
        from ..image.runimage import pull_into_store
        rec = pull_into_store(_store(args), args.ref, platform=args.platform, warn=log.warning, **pull_opts(args))
        sys.stdout.write(rec["manifestDigest"] + "\n")
        return 0
    from ..image.pull import Progress, pull
    p = pull(args.ref, args.layout, platform=args.platform, progress=Progress(False if args.quiet else None),
             warn=log.warning, **pull_opts(args))
    sys.stdout.write(p.manifest_digest + "\n")
    return 0


def _store(args: argparse.Namespace):
    from ..image.layerstore import Store, default_path
    return Store(args.image_store or default_path(args.root))


def run(args: argparse.Namespace) -> int:
    from ..errors import RuntimeFailure
    try:
        return _run(args)
    except OSError as e:
        raise RuntimeFailure.from_os(e, f"image {args.image_command}") from None


def _store_ls(args: argparse.Namespace) -> int:
    st = _store(args)
    recs = st.images()
    if args.json:
        json.dump([{k: v for k, v in r.items() if k != "config"} for r in recs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = [("NAME", "DIGEST", "PLATFORM", "LAYERS", "CREATED")]
    for r in recs:
        created = (r.get("config") or {}).get("created") or "-"
        for name in r.get("names") or ["<none>"]:
            table.append((name, r["manifestDigest"][7:19], r.get("platform") or "-",
                          str(len(r.get("diffIDs") or [])), str(created)[:19]))
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() + "\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .. import log
    from ..image.bundle import split_image_ref
    if args.image_command == "rm":
        st = _store(args)
        for ref in args.refs:
            rec = st.remove_image(ref, force=args.force)
            sys.stdout.write(rec["manifestDigest"] + "\n")
        return 0
    if args.image_command == "pull":
        return _pull(args)
    if args.image_command == "prune":
        removed, freed = _store(args).prune()
        for d in removed:
            sys.stdout.write(d + "\n")
        log.debug(f"pruned {len(removed)} layers")
        return 0
    if args.image_command == "ls" and args.source is None:
        return _store_ls(args)
    if args.image_command == "inspect":
        try:
            split_image_ref(args.source)
        except RuntimeFailure:
            rec = _store(args).find(args.source)
            if rec is None:
                raise
            json.dump(rec, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
    if args.image_command == "unpack":
        from ..image.bundle import unpack
        from ..image.progress import Progress
        path, ref = split_image_ref(args.source)
        from ..image import DEFAULT_MAX_EXPANSION
        ratio = DEFAULT_MAX_EXPANSION if args.max_expansion is None else args.max_expansion
        img = unpack(path, args.bundle, ref=args.ref or ref, platform=args.platform, uid_map=args.uid_map,
                     gid_map=args.gid_map, progress=Progress(), warn=log.warning, max_expansion=ratio)
        log.debug(f"unpacked {img.source}{':' + img.ref if img.ref else ''} "
                  f"({len(img.layers)} layers) into {args.bundle}")
        return 0
    from ..image.resolve import open_images
    if args.image_command == "ls":
        images = open_images(args.source)
        try:
            rows = images.refs()
        finally:
            images.close()
        if args.json:
            json.dump(rows, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        from ..image.mediatypes import short
        table = [("REF", "PLATFORMS", "TYPE", "DIGEST")]
        for r in rows:
            table.append((r["ref"] or "<none>", ",".join(r["platforms"]) or ("error" if "error" in r else "-"),
                          short(r["mediaType"]), r["digest"] or "-"))
        widths = [max(len(row[c]) for row in table) for c in range(3)]
        for row in table:
            sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[3] + "\n")
        for r in rows:
            if "error" in r:
                log.warning(f"{r['ref'] or r['digest']}: {r['error']}")
        return 0
    # inspect
    from ..image import platform as plat
    path, ref = split_image_ref(args.source)
    images = open_images(path)
    try:
        want = plat.parse(args.platform) if args.platform else plat.host()
        img = images.resolve(ref, want, args.platform is not None)
    finally:
        images.close()
    for w in img.warnings:
        log.warning(w)
    out = {
        "source": img.source,
        "ref": img.ref,
        "platform": str(img.platform) if img.platform else None,
        "manifestDigest": img.manifest_desc.digest if img.manifest_desc else None,
        "manifest": img.manifest,
        "configDigest": img.config_desc.digest,
        "config": img.config,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
