"""Compile a C file shipped with attnlab into a shared library, once, and load it.

Some paths (batch-1 decoding of a small GPT) are bound by the per-operation overhead of
eager PyTorch, not by arithmetic; a few hundred lines of plain C run them as one call.
The source ships with the package and is compiled with the system's C compiler (``$CC``
or ``cc``) for this CPU the first time it is needed:

    cc -O3 -fopenmp-simd -fno-math-errno -shared -fPIC -fopenmp -march=native file.c -o cache/<key>.so

The library is cached under ``$ATTNLAB_CACHE`` (default ``~/.cache/attnlab``), keyed by
the source (with the shared headers), the flags, the compiler's version and this CPU's
features, and written atomically (a temporary file renamed into place), so concurrent
first uses are safe. ``attnlab kernels build`` (:func:`build_all`) compiles every kernel
ahead of first use.

Loading a library runs its code, so the cache is treated as a code-loading path:

- the cache folder is created private (0700); one owned by another user, or writable by
  group or others when it cannot be made private, is not used;
- a library is loaded only if it is a regular file (not a link) owned by the current
  user, not writable by group or others, and its SHA-256 equals the one recorded beside
  it (``<library>.sha256``) when it was built; anything else is removed and rebuilt;
- temporary files left by a killed compile (older than ``STALE_TMP_SECONDS``) are removed.

No compiler, a failed build, or ``ATTNLAB_NATIVE=0`` means ``load`` returns ``None``
and the caller keeps its PyTorch path: the native kernels are never required.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

SOURCE_DIR = Path(__file__).parent
FLAGS = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-shared", "-fPIC")
# Tried in order: for this CPU (AVX-512 where it has it) with OpenMP threads, then
# without -march, then single-threaded (a compiler without OpenMP).
EXTRA_FLAGS = (("-fopenmp", "-march=native"), ("-fopenmp",), ())
KERNELS = ("causal_attention", "flash_attention", "gelu_tanh", "gpt_decode", "graph_edges")  # the C files shipped here
STALE_TMP_SECONDS = 900  # a compile's temporary file older than this was left by a killed one


def enabled() -> bool:
    """False when the user turned the native kernels off with ``ATTNLAB_NATIVE=0``."""
    return os.environ.get("ATTNLAB_NATIVE", "1") != "0"


def cache_dir() -> Path:
    return Path(os.environ.get("ATTNLAB_CACHE", Path.home() / ".cache" / "attnlab")) / "native"


class UnsafeCacheError(OSError):
    """The cache folder or a file in it may have been written by someone else."""


def _is_private(mode: int, owner: int) -> bool:
    """Owned by the current user and not writable by group or others."""
    return owner == _uid() and not mode & (stat.S_IWGRP | stat.S_IWOTH)


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else -1


def private_cache_dir() -> Path:
    """:func:`cache_dir`, created 0700 (its parents with the default mode), or
    :class:`UnsafeCacheError` when it is another user's or cannot be made private."""
    folder = cache_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeCacheError(f"{folder} is not a folder")
    if hasattr(os, "getuid"):
        if info.st_uid != _uid():
            raise UnsafeCacheError(f"{folder} belongs to another user")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(folder, 0o700)
    return folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hash_file(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def trusted(target: Path) -> bool:
    """Whether ``target`` may be loaded: a regular file owned by this user, not writable by
    group or others, with the SHA-256 recorded when it was built (the record itself private)."""
    record = _hash_file(target)
    try:
        for path in (target, record):
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and not _is_private(info.st_mode, info.st_uid)):
                return False
        return record.read_text().strip() == _digest(target)
    except (OSError, UnicodeDecodeError):
        return False


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def clean_stale_temporaries(folder: Path, older_than: float | None = None) -> list[Path]:
    """Remove the ``.*.tmp`` files a killed compile left in ``folder`` (those older than
    ``STALE_TMP_SECONDS``: a younger one may be another process's compile in progress)."""
    limit = time.time() - (STALE_TMP_SECONDS if older_than is None else older_than)
    removed = []
    for path in folder.glob(".*.tmp"):
        try:
            if os.lstat(path).st_mtime < limit:
                os.unlink(path)
                removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _compiler_version(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout


def _compile(compiler: str, source: Path, target: Path, flags: tuple[str, ...]) -> str | None:
    """Build ``source`` into ``target`` atomically, private (0700) and with its SHA-256
    recorded beside it; the compiler's error text on failure."""
    temporaries = []
    try:
        for suffix in ("", ".sha256"):  # mkstemp: private (0600) files of our own
            fd, path = tempfile.mkstemp(prefix=f".{target.name}{suffix}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            temporaries.append(Path(path))
        library, record = temporaries
        result = subprocess.run(
            [compiler, *flags, str(source), "-o", str(library), "-lm"], capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            return result.stderr.strip() or f"{compiler} exited with {result.returncode}"
        os.chmod(library, 0o700)
        record.write_text(_digest(library) + "\n")
        os.replace(record, _hash_file(target))
        os.replace(library, target)
        return None
    finally:
        _remove(*temporaries)


def load(name: str) -> ctypes.CDLL | None:
    """The compiled ``native/<name>.c`` as a ``ctypes`` library, or ``None`` (with one
    warning saying why) when it cannot be built here or ``ATTNLAB_NATIVE=0``."""
    return _build_and_load(name) if enabled() else None


def bind(name: str, signatures: dict[str, tuple[object, list]]) -> ctypes.CDLL | None:
    """:func:`load` with each function's ``(restype, argtypes)`` from ``signatures`` set
    (once per library), so ``ctypes`` converts and checks the arguments of every call."""
    library = load(name)
    if library is not None and not getattr(library, "_attnlab_typed", False):
        for function, (restype, argtypes) in signatures.items():
            getattr(library, function).restype = restype
            getattr(library, function).argtypes = argtypes
        library._attnlab_typed = True
    return library


def _source_text(source: Path) -> str:
    """The source and every header beside it (which it may include): what the build reads."""
    return "".join(path.read_text() for path in [source, *sorted(SOURCE_DIR.glob("*.h"))])


def _first_error(text: str) -> str:
    """The line of a compiler's output that says what went wrong."""
    lines = text.splitlines()
    return next((line for line in lines if "error" in line), lines[-1] if lines else "unknown error")


def build(name: str) -> Path:
    """The trusted compiled library of ``native/<name>.c``, compiled if needed (see the
    module docstring); raises ``OSError``/``SubprocessError`` saying why it cannot be."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise FileNotFoundError(f"no C compiler found (CC={os.environ.get('CC', 'cc')})")
    source = SOURCE_DIR / f"{name}.c"
    folder = private_cache_dir()
    clean_stale_temporaries(folder)
    version = _compiler_version(compiler)
    error = None
    for flags in (FLAGS + extra for extra in EXTRA_FLAGS):
        key = hashlib.sha256("\0".join([_source_text(source), " ".join(flags), version, _cpu_features()]).encode())
        target = folder / f"{name}-{key.hexdigest()[:16]}.so"
        if trusted(target):
            return target
        _remove(target, _hash_file(target))  # absent, planted, altered or half-written: rebuild
        if (error := _compile(compiler, source, target, flags)) is None:
            return target
    raise OSError(_first_error(error or ""))


def build_all() -> dict[str, Path | str]:
    """Compile every shipped kernel now (``attnlab kernels build``): per name, the library's
    path or the reason it could not be built."""
    results: dict[str, Path | str] = {}
    for name in KERNELS:
        try:
            results[name] = build(name)
        except (OSError, subprocess.SubprocessError) as exc:
            results[name] = str(exc)
    return results


@functools.cache
def _build_and_load(name: str) -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(str(build(name)))
    except FileNotFoundError as exc:
        if "no C compiler" in str(exc):
            warnings.warn(f"attnlab: {exc}; {name} uses its PyTorch path", stacklevel=2)
            return None
        error = str(exc)
    except UnsafeCacheError as exc:
        warnings.warn(f"attnlab: not loading {name} from an unsafe cache ({exc}); it uses its PyTorch path",
                      stacklevel=2)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
    warnings.warn(f"attnlab: could not build {name}.c ({_first_error(error or '')}); "
                  "it uses its PyTorch path", stacklevel=2)
    return None
