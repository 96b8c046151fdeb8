"""``run --image REF ID [-- CMD ARGS]``: a bundle whose rootfs is an overlay of stored layers.

1. the id is validated and must be free before any path is made from it;
2. REF is a layout/archive path (``LAYOUT[:REF]``) or an image of the store (a name or digest);
   every layer not yet in the store is unpacked into it once (:mod:`.layerstore`);
3. ``<root>/.bundles/ID/rootfs`` is an overlay of the layers with ``upper/`` of its own, writable,
   removed with the container; without overlayfs the layers are copied into ``rootfs`` instead;
4. config.json comes from the image config (image-spec conversion.md) and the user's overrides
   (command, --env, --workdir, --user, --mount/-v, --read-only, --tty); a missing WorkingDir is made.

On any error everything made for the bundle is removed again (the store keeps the complete layers).
"""
from __future__ import annotations

import os
import zlib

from .. import fastjson as json
from . import DEFAULT_MAX_EXPANSION, convert
from .errors import ImageError
from .fsops import Root
from .layerstore import Store, default_path
from .overlay import USE_FILE, OverlayUnavailable, mount, remove_bundle
from .refs import split_image_ref

# The unpacker (bundle, resolve, apply, layerstream, tarstream) is imported only when a layer must be
# unpacked or the source read: a cached image starts from its store record alone.

BUNDLES = ".bundles"


class Overrides:
    """What the user changes of the image's defaults (all optional)."""

    def __init__(self, command: list[str] | None = None, env: list[str] | None = None,
                 workdir: str | None = None, user: str | None = None, mounts: list[str] | None = None,
                 read_only: bool = False, tty: bool = False) -> None:
        self.command = command or []
        self.env = env or []
        self.workdir = workdir
        self.user = user
        self.mounts = mounts or []
        self.read_only = read_only
        self.tty = tty


# -- finding the image -----------------------------------------------------------------------------
def _record(img, names: list[str], source: str, source_ref: str | None) -> dict:
    return {"manifestDigest": img.manifest_desc.digest if img.manifest_desc else img.config_desc.digest,
            "configDigest": img.config_desc.digest, "config": img.config,
            "diffIDs": [la.diff_id for la in img.layers], "names": names, "source": source,
            "sourceRef": source_ref, "platform": str(img.platform) if img.platform else None}


def _import_layers(store: Store, img, max_expansion: float | None, progress, warn) -> None:
    """Unpack into the store every layer of ``img`` it does not have yet."""
    from .apply import Applier
    from .bundle import apply_layer
    from .idmap import IdMapper
    for layer in img.layers:
        if store.has_layer(layer.diff_id):
            continue

        def fill(tmp: str, layer=layer) -> None:
            with Root(tmp, mkdir_owner=(0, 0)) as root:
                ap = Applier(root, uid_map=IdMapper([], "uid"), gid_map=IdMapper([], "gid"), rootless=False,
                             warn=warn, overlay=True)
                apply_layer(ap, layer, len(img.layers), max_expansion, progress)
                ap.finish()
        store.ensure_layer(layer.diff_id, fill, {"digest": layer.desc.digest, "size": None,
                                                 "mediaType": layer.desc.media_type})


def _open_source(source: str, ref: str | None, platform: str | None):
    from . import platform as plat
    from .resolve import open_images
    images = open_images(source)
    try:
        want = plat.parse(platform) if platform else plat.host()
        img = images.resolve(ref, want, platform is not None)
    except BaseException:
        images.close()
        raise
    return images, img


def find_stored(store: Store, text: str) -> dict | None:
    """A stored image by the name given, or by its normalized registry reference."""
    rec = store.find(text)
    if rec is not None:
        return rec
    from .reference import parse
    try:
        cands = parse(text)
    except ImageError:
        return None
    for c in cands:
        rec = store.find(str(c))
        if rec is not None:
            return rec
    return None


def pull_into_store(store: Store, text: str, *, platform: str | None = None, warn=None, **opts) -> dict:
    """Pull ``text`` into the store's own layout (``STORE/oci``) and record it (layers are unpacked
    when a container first uses them)."""
    from .pull import Progress, pull
    from .reference import RegistriesConf
    layout = os.path.join(store.path, "oci")
    conf = RegistriesConf(opts.get("registries_conf"))
    name = str(conf.candidates(text)[0])
    with store.shared():                      # `image prune` collects the layout's blobs: not meanwhile
        # the store's layout holds many images: each is named by its full reference, not just its tag
        pulled = pull(text, layout, platform=platform, progress=Progress(), warn=warn, ref_name=name, **opts)
        full = str(pulled.ref)
        images, img = _open_source(layout, pulled.ref_name, platform)
        try:
            names = [full] + ([text] if text != full else [])
            return store.add_image(_record(img, names, layout, pulled.ref_name))
        finally:
            images.close()


def find_image(store: Store, image_ref: str, *, platform: str | None, need_layers: bool,
               max_expansion: float | None, progress, warn, pull_opts: dict | None = None) -> tuple[dict, object]:
    """(image record, open images or None).  The open images are returned when the caller may need
    the layer blobs again (the full-copy fallback); close them."""
    try:
        path, ref = split_image_ref(image_ref)
    except ImageError:
        path = ref = None
    if path is not None:
        name = os.path.abspath(path) + (f":{ref}" if ref else "")
        key = f"{zlib.crc32(name.encode()):08x}{zlib.adler32(name.encode()):08x}-{platform or 'host'}".replace("/", "_")
        fp = _fingerprint(path)
        if need_layers:
            rec = store.cached_ref(key, fp)
            if rec is not None:
                return rec, None
        images, img = _open_source(path, ref, platform)
        try:
            for w in img.warnings:
                warn(w)
            if need_layers:
                _import_layers(store, img, max_expansion, progress, warn)
            rec = store.add_image(_record(img, [name], os.path.abspath(path), ref))
            store.remember_ref(key, fp, rec["manifestDigest"])
            rec["_image"] = img
            return rec, images
        except BaseException:
            images.close()
            raise
    rec = find_stored(store, image_ref)
    if rec is None:
        from .reference import is_registry_ref
        if pull_opts is None or not is_registry_ref(image_ref):
            raise ImageError("no such image layout, archive or stored image", step="image", path=image_ref)
        rec = pull_into_store(store, image_ref, platform=platform, warn=warn, **pull_opts)
    if all(store.has_layer(d) for d in rec.get("diffIDs") or []):
        return rec, None                 # (a copying caller opens the source itself)
    images, img = _open_source(rec["source"], rec.get("sourceRef"), rec.get("platform"))
    try:
        if need_layers:
            _import_layers(store, img, max_expansion, progress, warn)
        rec["_image"] = img
        return rec, images
    except BaseException:
        images.close()
        raise


def _fingerprint(path: str) -> list:
    """What changes when a layout or archive gets another content for its refs: index.json of a
    layout (rewritten, or renamed into place), the archive file itself.  Blobs are content-addressed."""
    p = os.path.join(path, "index.json") if os.path.isdir(path) else path
    try:
        st = os.stat(p)
    except OSError:
        return []
    return [os.path.realpath(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


# -- overrides -------------------------------------------------------------------------------------
def _set_env(env: list[str], kv: str) -> None:
    name = kv.partition("=")[0]
    env[:] = [e for e in env if e.partition("=")[0] != name] + [kv]


def _parse_mount(v: str) -> dict:
    """``SRC:DST[:ro|rw]`` (-v) or ``type=bind,source=SRC,target=DST[,readonly]`` (--mount)."""
    if "=" in v.split(",")[0]:
        kv = {}
        for part in v.split(","):
            k, eq, val = part.partition("=")
            kv[k.strip()] = val if eq else "true"
        if kv.get("type", "bind") != "bind":
            raise ImageError(f"only bind mounts are supported (type={kv['type']})", step="--mount", path=v)
        src = kv.get("source") or kv.get("src")
        dst = kv.get("target") or kv.get("destination") or kv.get("dst")
        ro = kv.get("readonly", kv.get("ro", "false")) in ("true", "1", "")
        unknown = set(kv) - {"type", "source", "src", "target", "destination", "dst", "readonly", "ro"}
        if unknown:
            raise ImageError(f"unsupported option(s) {', '.join(sorted(unknown))}", step="--mount", path=v)
    else:
        parts = v.split(":")
        if len(parts) not in (2, 3):
            raise ImageError("expected SRC:DST[:ro|rw]", step="--volume", path=v)
        src, dst = parts[0], parts[1]
        opts = parts[2].split(",") if len(parts) == 3 else []
        bad = [o for o in opts if o not in ("ro", "rw")]
        if bad:
            raise ImageError(f"unsupported option(s) {', '.join(bad)} (ro, rw)", step="--volume", path=v)
        ro = "ro" in opts
    if not src or not dst:
        raise ImageError("needs a source and a destination", step="--mount", path=v)
    if not dst.startswith("/"):
        raise ImageError("destination must be an absolute path", step="--mount", path=v)
    src = os.path.abspath(src)
    if not os.path.exists(src):
        raise ImageError("source does not exist", step="--mount", path=src)
    return {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro" if ro else "rw"]}


def apply_overrides(spec: dict, image_config: dict, root: Root, o: Overrides) -> None:
    proc = spec["process"]
    cfg = image_config.get("config") or {}
    if o.command:
        proc["args"] = list(cfg.get("Entrypoint") or []) + list(o.command)
    env = proc["env"]
    user_env = set()
    for e in o.env:
        if "=" not in e:
            if e not in os.environ:
                continue            # as podman: a name without value takes the caller's, if any
            e = f"{e}={os.environ[e]}"
        if not e.partition("=")[0]:
            raise ImageError("invalid variable (want NAME=value)", step="--env", path=e)
        _set_env(env, e)
        user_env.add(e.partition("=")[0])
    if o.user is not None:
        uid, gid, extra, home = convert.resolve_user(o.user, root)
        u = {"uid": uid, "gid": gid}
        if extra:
            u["additionalGids"] = extra
        proc["user"] = u
        image_env = {kv.partition("=")[0] for kv in cfg.get("Env") or []}
        if "HOME" not in image_env and "HOME" not in user_env:
            _set_env(env, f"HOME={home or '/'}")
    if o.workdir is not None:
        if not o.workdir.startswith("/"):
            raise ImageError("must be an absolute path", step="--workdir", path=o.workdir)
        proc["cwd"] = o.workdir
    if o.tty:
        proc["terminal"] = True
    spec.setdefault("root", {})["readonly"] = bool(o.read_only)
    if o.mounts:
        spec["mounts"] = list(spec.get("mounts") or []) + [_parse_mount(m) for m in o.mounts]


def make_workdir(root: Root, cwd: str, uid: int, gid: int) -> None:
    """Create a missing working directory inside the rootfs (runc and podman do), owned by the user."""
    rel = cwd.strip("/")
    if not rel:
        return
    try:
        os.close(root.open(rel))
        return
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        raise ImageError("is not a directory in the image", step="working directory", path=cwd) from None
    fd = root.dir(rel, create=True)
    if os.geteuid() == 0:                 # rootless: the ids are mapped; the directory stays ours
        os.chown(f"/proc/self/fd/{fd}", uid, gid)
    root.invalidate()


# -- the bundle ------------------------------------------------------------------------------------
def _use_key(root: str, cid: str) -> str:
    r = f"{os.path.abspath(root)}\0{cid}".encode()
    return f"{cid[:100]}-{zlib.crc32(r):08x}{zlib.adler32(r):08x}"


def prepare(root: str, cid: str, image_ref: str, o: Overrides, *, store_path: str | None = None,
            platform: str | None = None, max_expansion: float | None = DEFAULT_MAX_EXPANSION,
            progress=None, warn=None, pull_opts: dict | None = None) -> str:
    """Make ``<root>/.bundles/<cid>`` for ``image_ref``; return its path."""
    from .. import state
    from ..errors import ContainerExists
    warn = warn or (lambda m: None)
    state.validate_id(cid)                       # before any path is built from it
    if os.path.lexists(os.path.join(root, cid)):
        raise ContainerExists(cid)
    store = Store(store_path or default_path(root))
    bdir = os.path.join(root, BUNDLES)
    bundle = os.path.join(bdir, cid)
    try:
        os.makedirs(bdir, 0o700, exist_ok=True)
        os.chmod(bdir, 0o700)
        if os.path.lexists(bundle):
            remove_bundle(bundle)                # a crashed run's leftover: no container owns it
        os.mkdir(bundle, 0o700)
    except OSError as e:
        raise ImageError.from_os(e, "bundle", bundle) from None
    images = None
    try:
        overlay = os.geteuid() == 0
        with store.shared():
            rec, images = find_image(store, image_ref, platform=platform, need_layers=overlay,
                                     max_expansion=max_expansion, progress=progress, warn=warn,
                                     pull_opts=pull_opts)
            rootfs = os.path.join(bundle, "rootfs")
            os.mkdir(rootfs, 0o755)
            if overlay:
                try:
                    _mount_layers(store, rec, bundle)
                except OverlayUnavailable as e:
                    warn(f"{e}: copying the layers instead")
                    overlay = False
            if not overlay:
                if images is None:
                    images, rec["_image"] = _open_source(rec["source"], rec.get("sourceRef"), rec.get("platform"))
                from .bundle import _unpack_layers
                _unpack_layers(rec["_image"], rootfs, uid_ranges=[], gid_ranges=[], rootless=os.geteuid() != 0,
                               warn=warn, progress=progress, use_openat2=None, max_expansion=max_expansion).close()
            use = store.add_use(_use_key(root, cid), {
                "id": cid, "root": os.path.abspath(root), "bundle": bundle,
                "manifestDigest": rec["manifestDigest"], "diffIDs": rec.get("diffIDs") or []})
            with open(os.path.join(bundle, USE_FILE), "w") as f:
                f.write(use + "\n")
        with Root(rootfs) as r:
            spec = convert.runtime_config(rec["config"], r, warn=warn)
            apply_overrides(spec, rec["config"], r, o)
            u = spec["process"]["user"]
            make_workdir(r, spec["process"]["cwd"], u["uid"], u["gid"])
        spec["root"]["path"] = "rootfs"
        tmp = os.path.join(bundle, "config.json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(spec, indent=1))
        os.rename(tmp, os.path.join(bundle, "config.json"))
        return bundle
    except BaseException as exc:
        try:
            remove_bundle(bundle)
        except OSError as e:
            warn(f"could not remove {bundle}: {e}")
        if isinstance(exc, OSError):
            raise ImageError.from_os(exc, "run --image", getattr(exc, "filename", None) or bundle) from None
        raise
    finally:
        if images is not None:
            images.close()


def _mount_layers(store: Store, rec: dict, bundle: str) -> None:
    diff_ids = rec.get("diffIDs") or []
    if not diff_ids:
        raise OverlayUnavailable("an image without layers")
    upper, work = os.path.join(bundle, "upper"), os.path.join(bundle, "work")
    os.mkdir(upper, 0o755)
    os.mkdir(work, 0o700)
    # the merged root directory shows the upper directory's owner and mode: take the top layer's
    st = os.stat(store.layer_dir(diff_ids[-1]))
    os.chown(upper, st.st_uid, st.st_gid)
    os.chmod(upper, st.st_mode & 0o7777)
    lowers = [store.layer_dir(d).rsplit("/", 1)[1] for d in reversed(diff_ids)]
    mount(os.path.join(store.path, "layers"), lowers, upper, work, os.path.join(bundle, "rootfs"))
