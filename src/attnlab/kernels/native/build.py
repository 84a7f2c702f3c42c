"""Compile a C file shipped with attnlab into a shared library, once, and load it.

Some paths (batch-1 decoding of a small GPT) are bound by the per-operation overhead of
eager PyTorch, not by arithmetic; a few hundred lines of plain C run them as one call.
The source ships with the package and is compiled with the system's C compiler (``$CC``
or ``cc``) for this CPU the first time it is needed:

    cc -O3 -fopenmp-simd -fno-math-errno -shared -fPIC -fopenmp -march=native file.c -o cache/<key>.so

The library is cached under ``$ATTNLAB_CACHE`` (default ``~/.cache/attnlab``), keyed by
the source (with the shared headers), the flags, the compiler's version and this CPU's
features, and written atomically (a temporary file renamed into place), so concurrent
first uses are safe.
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
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE_DIR = Path(__file__).parent
FLAGS = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-shared", "-fPIC")
# Tried in order: for this CPU (AVX-512 where it has it) with OpenMP threads, then
# without -march, then single-threaded (a compiler without OpenMP).
EXTRA_FLAGS = (("-fopenmp", "-march=native"), ("-fopenmp",), ())


def enabled() -> bool:
    """False when the user turned the native kernels off with ``ATTNLAB_NATIVE=0``."""
    return os.environ.get("ATTNLAB_NATIVE", "1") != "0"


def cache_dir() -> Path:
    return Path(os.environ.get("ATTNLAB_CACHE", Path.home() / ".cache" / "attnlab")) / "native"


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
    """Build ``source`` into ``target`` atomically; the compiler's error text on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            [compiler, *flags, str(source), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            return result.stderr.strip() or f"{compiler} exited with {result.returncode}"
        os.replace(tmp, target)
        return None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


@functools.cache
def _build_and_load(name: str) -> ctypes.CDLL | None:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        warnings.warn(f"attnlab: no C compiler found (CC={os.environ.get('CC', 'cc')}); {name} uses its PyTorch path", stacklevel=2)
        return None
    source = SOURCE_DIR / f"{name}.c"
    error = None
    try:
        version = _compiler_version(compiler)
        for flags in (FLAGS + extra for extra in EXTRA_FLAGS):
            key = hashlib.sha256("\0".join([_source_text(source), " ".join(flags), version, _cpu_features()]).encode())
            target = cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
            if target.exists() or (error := _compile(compiler, source, target, flags)) is None:
                return ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
    warnings.warn(f"attnlab: could not build {name}.c ({_first_error(error or '')}); "
                  "it uses its PyTorch path", stacklevel=2)
    return None
