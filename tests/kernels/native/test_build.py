"""Building, caching and falling back for the C kernels (attnlab.kernels.native.build)."""

import ctypes
import hashlib
import os
import pathlib
import shutil
import stat
import time

import pytest

from attnlab.kernels.native import build

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

SOURCE = "int attnlab_answer(int x) { return 2 * x + 1; }\n"


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """A source folder and an empty library cache of our own; a fresh load() cache."""
    folder = tmp_path / "src"
    folder.mkdir()
    monkeypatch.setattr(build, "SOURCE_DIR", folder)
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "cache"))
    build._build_and_load.cache_clear()
    yield folder
    build._build_and_load.cache_clear()


def test_builds_once_and_loads_from_the_cache(sources, monkeypatch):
    (sources / "answer.c").write_text(SOURCE)
    library = build.load("answer")
    assert library.attnlab_answer(20) == 41
    built = list(build.cache_dir().glob("answer-*.so"))
    assert len(built) == 1 and not list(build.cache_dir().glob(".*.tmp"))  # no temporary file left
    build._build_and_load.cache_clear()
    monkeypatch.setattr(build, "_compile", lambda *a: pytest.fail("compiled again"))
    assert build.load("answer").attnlab_answer(1) == 3


def test_a_changed_source_is_rebuilt(sources):
    (sources / "answer.c").write_text(SOURCE)
    build.load("answer")
    (sources / "answer.c").write_text(SOURCE.replace("2 * x + 1", "3 * x"))
    build._build_and_load.cache_clear()
    assert build.load("answer").attnlab_answer(5) == 15
    assert len(list(build.cache_dir().glob("answer-*.so"))) == 2


def test_a_changed_header_is_rebuilt(sources):
    """Headers beside the sources (shared by several kernels) are part of the build key."""
    (sources / "answer.h").write_text("#define FACTOR 2\n")
    (sources / "answer.c").write_text('#include "answer.h"\n' + SOURCE.replace("2 * x", "FACTOR * x"))
    assert build.load("answer").attnlab_answer(5) == 11
    (sources / "answer.h").write_text("#define FACTOR 4\n")
    build._build_and_load.cache_clear()
    assert build.load("answer").attnlab_answer(5) == 21


def test_a_broken_source_warns_once_and_returns_none(sources):
    (sources / "broken.c").write_text("int attnlab_broken( { return; }\n")
    with pytest.warns(UserWarning, match=r"could not build broken\.c .*PyTorch path"):
        assert build.load("broken") is None
    assert not list(build.cache_dir().glob("*"))  # nothing half-written left


def test_no_compiler_warns_and_returns_none(sources, monkeypatch):
    (sources / "answer.c").write_text(SOURCE)
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.warns(UserWarning, match="no C compiler found"):
        assert build.load("answer") is None


def test_switched_off_returns_none_without_building(sources, monkeypatch):
    (sources / "answer.c").write_text(SOURCE)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert build.load("answer") is None
    assert not build.cache_dir().exists()


def test_the_shipped_decoder_builds_with_openmp():
    library = build.load("gpt_decode")
    assert isinstance(library, ctypes.CDLL) and hasattr(library, "attnlab_gpt_decode")


# The cache is a code-loading path: what is loaded must be ours, private and unaltered.


def _built(name="answer"):
    (library,) = build.cache_dir().glob(f"{name}-*.so")
    return library


def _recompiles(monkeypatch) -> list:
    """Count the compiles of the next load (a fresh load() cache)."""
    calls, real = [], build._compile
    monkeypatch.setattr(build, "_compile", lambda *a: calls.append(1) or real(*a))
    build._build_and_load.cache_clear()
    return calls


def test_the_cache_folder_is_private(sources):
    (sources / "answer.c").write_text(SOURCE)
    build.cache_dir().mkdir(parents=True, mode=0o755)
    os.chmod(build.cache_dir(), 0o777)
    assert build.load("answer").attnlab_answer(1) == 3
    assert stat.S_IMODE(os.stat(build.cache_dir()).st_mode) == 0o700
    library = _built()
    for path in (library, library.with_name(library.name + ".sha256")):
        mode = os.stat(path).st_mode
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IRWXO)


def test_a_folder_of_another_user_is_not_used(sources, monkeypatch):
    (sources / "answer.c").write_text(SOURCE)
    monkeypatch.setattr(build, "_uid", lambda: os.getuid() + 1)
    with pytest.warns(UserWarning, match="unsafe cache.*another user"):
        assert build.load("answer") is None
    assert not list(build.cache_dir().glob("*.so"))


@pytest.mark.parametrize("tamper", ["altered bytes", "group writable", "no hash record", "wrong hash record",
                                    "a link", "another owner"])
def test_an_untrusted_library_is_rebuilt_not_loaded(sources, monkeypatch, tamper):
    (sources / "answer.c").write_text(SOURCE)
    build.load("answer")
    library = _built()
    record = library.with_name(library.name + ".sha256")
    if tamper == "altered bytes":  # a new file in its place (the loaded one stays mapped)
        altered = library.with_name("altered.so")
        altered.write_bytes(library.read_bytes() + b"\0")
        os.chmod(altered, 0o700)
        altered.replace(library)
    elif tamper == "group writable":
        os.chmod(library, 0o775)
    elif tamper == "no hash record":
        record.unlink()
    elif tamper == "wrong hash record":
        record.write_text("0" * 64 + "\n")
    elif tamper == "a link":
        planted = library.with_name("planted.so")
        library.rename(planted)
        library.symlink_to(planted)
        record.write_text(hashlib.sha256(planted.read_bytes()).hexdigest() + "\n")
    else:  # owned by someone else: the owner check sees another uid for files only
        real_private = build._is_private
        monkeypatch.setattr(build, "_is_private", lambda mode, owner: real_private(mode, owner + 1))
    assert not build.trusted(library)
    calls = _recompiles(monkeypatch)
    assert build.load("answer").attnlab_answer(4) == 9
    assert calls == [1] and not _built().is_symlink()
    if tamper != "another owner":  # (there every file looks like someone else's)
        assert build.trusted(_built())


def test_a_trusted_library_is_loaded_without_compiling(sources, monkeypatch):
    (sources / "answer.c").write_text(SOURCE)
    build.load("answer")
    assert build.trusted(_built())
    calls = _recompiles(monkeypatch)
    build.load("answer")
    assert calls == []


def test_temporaries_of_a_killed_compile_are_cleaned_up(sources):
    (sources / "answer.c").write_text(SOURCE)
    folder = build.private_cache_dir()
    stale = folder / ".answer-0123456789abcdef.so.k1ll3d.tmp"
    fresh = folder / ".answer-0123456789abcdef.so.busy00.tmp"  # another process compiling now
    for path in (stale, fresh):
        path.write_bytes(b"half a library")
    old = time.time() - build.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    build.load("answer")
    assert not stale.exists() and fresh.exists()


def test_build_all_compiles_every_shipped_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "cache"))
    results = build.build_all()
    assert sorted(results) == sorted(build.KERNELS)
    for name, path in results.items():
        assert isinstance(path, pathlib.Path) and build.trusted(path), (name, path)
    calls = []
    monkeypatch.setattr(build, "_compile", lambda *a: calls.append(1))
    assert build.build_all() == results and calls == []  # the second time: all cached


def test_cli_kernels_build(tmp_path, monkeypatch, capsys):
    from attnlab.cli.main import main

    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "cache"))
    assert main(["kernels", "build"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in build.KERNELS) and str(tmp_path / "cache") in out
    monkeypatch.setenv("CC", "no-such-compiler")
    assert main(["kernels", "build"]) == 1
    assert "no C compiler" in capsys.readouterr().err
