"""JSON through CPython's C accelerator (_json) directly, for the state file and `state` output.

Why: importing :mod:`json` imports :mod:`re` (and with it enum), ~5-8 ms on every `state`, `kill`,
`start` and `delete` that shims make.  The C scanner and string encoder need none of that.  Only what
state files hold is supported: dicts, lists, str, int, float, bool, None.
"""

import _json

_WS = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads from a JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.replace("Infinity", "inf"))


_scan = _json.make_scanner(_Context())


def loads(text: str | bytes) -> object:
    if isinstance(text, bytes):
        text = text.decode()
    i = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, i)
    except StopIteration as e:
        raise ValueError(f"Expecting value at char {e.value}") from None
    except Exception as e:     # the C scanner reports some errors via json.decoder, which we avoid
        raise ValueError(f"malformed JSON: {e}") from None
    if text[end:].strip(_WS):
        raise ValueError(f"Extra data at char {end}")
    return obj


def _unencodable(obj: object) -> object:
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


# The C encoder (what json.dumps uses without indent): a podman config with its seccomp profile is
# ~2000 values, ~8 ms through the Python fallback below and ~0.3 ms here.  Output is identical.
_c_encode = getattr(_json, "make_encoder", None)
_c_encode = _c_encode and _c_encode(None, _unencodable, _json.encode_basestring_ascii, None, ": ", ", ",
                                    False, False, True)


def dumps(obj: object, indent: int | None = None, _level: int = 0) -> str:
    if indent is None and _c_encode is not None:
        return "".join(_c_encode(obj, 0))
    return _dumps(obj, indent, _level)


def _dumps(obj: object, indent: int | None = None, _level: int = 0) -> str:
    enc = _json.encode_basestring_ascii
    if isinstance(obj, str):
        return enc(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, (int, float)):
        return repr(obj) if isinstance(obj, float) else str(int(obj))
    if indent is None:
        nl = sep = ""
        colon, comma = ": ", ", "
    else:
        nl = "\n" + " " * (indent * (_level + 1))
        sep = "\n" + " " * (indent * _level)
        colon, comma = ": ", ","
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{nl}{enc(str(k))}{colon}{_dumps(v, indent, _level + 1)}" for k, v in obj.items()]
        return "{" + comma.join(items) + sep + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        return "[" + comma.join(f"{nl}{_dumps(v, indent, _level + 1)}" for v in obj) + sep + "]"
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
