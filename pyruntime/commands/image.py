"""pyruntime image {unpack,ls,inspect}: OCI image layouts and archives -> runtime bundles."""
from __future__ import annotations

import argparse
import json
import sys

# sub-subcommands need the real argparse; image is not on a shim's hot path
FULL_ARGPARSE = True
HELP = "unpack, list and inspect OCI image layouts and archives"


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="image_command", metavar="{unpack,ls,inspect}")
    sub.required = True
    u = sub.add_parser("unpack", help="unpack an image into a bundle (rootfs + config.json)",
                       description="Unpack LAYOUT_DIR or ARCHIVE.tar (optionally :REF) into BUNDLE_DIR.")
    u.add_argument("--ref", default=None, help="image name (org.opencontainers.image.ref.name or a "
                                               "docker-save tag); default: the only image")
    u.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    u.add_argument("--uid-map", action="append", default=[], metavar="C:H:N",
                   help="shift file owners: container uid C..C+N-1 -> host uid H.. (repeatable)")
    u.add_argument("--gid-map", action="append", default=[], metavar="C:H:N", help="same for gids")
    u.add_argument("source", metavar="LAYOUT_DIR|ARCHIVE.tar[:REF]")
    u.add_argument("bundle", metavar="BUNDLE_DIR")
    ls = sub.add_parser("ls", help="list the images (refs and platforms) of a layout or archive")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("source", metavar="LAYOUT|ARCHIVE")
    i = sub.add_parser("inspect", help="print the resolved manifest and config as JSON")
    i.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    i.add_argument("source", metavar="LAYOUT[:REF]|ARCHIVE[:REF]")


def run(args: argparse.Namespace) -> int:
    from .. import log
    from ..image.bundle import split_image_ref
    if args.image_command == "unpack":
        from ..image.bundle import unpack
        from ..image.progress import Progress
        path, ref = split_image_ref(args.source)
        img = unpack(path, args.bundle, ref=args.ref or ref, platform=args.platform, uid_map=args.uid_map,
                     gid_map=args.gid_map, progress=Progress(), warn=log.warning)
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
