"""Building, caching and falling back for the C kernels (attnlab.kernels.native.build)."""

import ctypes
import shutil

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
