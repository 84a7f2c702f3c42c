"""The gettext corpus on catalogs the tests write themselves (.po and compiled .mo)."""

from __future__ import annotations

import gettext
import shutil
import subprocess
from pathlib import Path

import polib
import pytest

from attnlab.data.corpus import CorpusSplits
from attnlab.data.gettext_corpus import (
    Locale,
    catalog_family,
    find_catalogs,
    load_gettext,
    plural_indices,
    strip_pair_accelerators,
)
from attnlab.errors import AttnlabError

ZH_PLURAL = "nplurals=1; plural=0;"
FR_PLURAL = "nplurals=2; plural=(n > 1);"


def write_catalog(root: Path, locale: str, domain: str, entries: list[polib.POEntry], *,
                  charset: str = "UTF-8", plural: str = ZH_PLURAL, mo: bool = False) -> Path:
    """``root/<locale>/LC_MESSAGES/<domain>.po`` (or a compiled ``.mo``) in ``charset``."""
    folder = root / locale / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    po = polib.POFile(encoding=charset)
    po.metadata = {"Content-Type": f"text/plain; charset={charset}", "Plural-Forms": plural,
                   "Language": locale.split(".")[0]}
    po.extend(entries)
    path = folder / f"{domain}.{'mo' if mo else 'po'}"
    po.save_as_mofile(str(path)) if mo else po.save(str(path))
    return path


def E(msgid: str, msgstr: str = "", **kwargs) -> polib.POEntry:
    return polib.POEntry(msgid=msgid, msgstr=msgstr, **kwargs)


def filler(domain: str, n: int = 6) -> list[polib.POEntry]:
    """``n`` plain messages unique to ``domain``."""
    return [E(f"{domain} message number {i}", f"{domain} 消息 {i}") for i in range(n)]


@pytest.fixture
def zh_root(tmp_path: Path) -> Path:
    """Four zh_CN programs (one .mo in GB2312) and a decoy in zh_TW."""
    root = tmp_path / "locale"
    editor = [
        E("Open file", "打开文件"),
        E("_Open", "打开(_O)"),
        E("Cance_l", "取消(_L)"),
        E("Copy %s to %s", "将 %s 复制到 %s"),
        E("Delete %(count)d files?", "删除 %(count)d 个文件？", flags=["python-format"]),
        E("Save as", "另存为", flags=["fuzzy"]),
        E("Untranslated message", ""),
        E("translator-credits", "张三"),
        E("Lost %s", "丢失"),  # the translation lost its placeholder
        E("%s: %s", "%s：%s"),  # placeholders only
        E("Bold &amp; italic", "粗体 &amp; 斜体"),
        E("%d file", msgid_plural="%d files", msgstr_plural={0: "%d 个文件"}),
        E("Multi\nline   text", "多行\n文本"),
        E("A very long message " * 20, "很长的消息" * 20),
        *filler("editor"),
    ]
    obsolete = E("Old message", "旧消息")
    obsolete.obsolete = True
    editor.append(obsolete)
    write_catalog(root, "zh_CN", "editor", editor)
    write_catalog(root, "zh_CN", "viewer", [E("View file", "查看文件"), *filler("viewer")], charset="GB2312", mo=True)
    write_catalog(root, "zh_CN", "player", [E("Play", "播放"), *filler("player")])
    write_catalog(root, "zh_CN", "mailer", [E("Send mail", "发送邮件"), E("Open file", "打开文件"), *filler("mailer")])
    write_catalog(root, "zh_TW", "player", [E("Play", "播放（繁體）"), *filler("player")])
    return root


def all_pairs(splits: CorpusSplits) -> dict[str, str]:
    return {s: t for _, c in splits.items() for s, t in zip(c.src, c.tgt)}


def test_reads_po_and_gb2312_mo_and_cleans(zh_root: Path):
    splits = load_gettext("gettext:zh_CN", roots=[zh_root])
    pairs = all_pairs(splits)
    assert pairs["View file"] == "查看文件"  # .mo in GB2312, charset from its header
    assert pairs["Open file"] == "打开文件"
    assert pairs["Open"] == "打开" and pairs["Cancel"] == "取消"  # accelerators stripped
    assert pairs["Copy %s to %s"] == "将 %s 复制到 %s"
    assert pairs["Delete %(count)d files?"] == "删除 %(count)d 个文件？"
    assert pairs["%d file"] == "%d 个文件" and "%d files" not in pairs  # Chinese: one plural form
    assert pairs["Bold & italic"] == "粗体 & 斜体"  # entities unescaped
    assert pairs["Multi line text"] == "多行 文本"  # whitespace collapsed
    for dropped in ("Save as", "Untranslated message", "translator-credits", "Lost %s", "%s: %s", "Old message"):
        assert dropped not in pairs
    assert not any(s.startswith("A very long") for s in pairs)
    assert "播放（繁體）" not in pairs.values()  # zh_TW is another script


def test_report_counts_each_step(zh_root: Path):
    report = load_gettext("zh_CN", roots=[zh_root]).report
    assert report.catalogs == 4
    assert report.removed["fuzzy or obsolete"] == 2
    assert report.removed["untranslated"] == 1
    assert report.removed["translator credits"] == 1
    assert report.removed["placeholders differ"] == 1
    assert report.removed["no words (placeholders or symbols only)"] == 1
    assert report.removed["longer than 200 characters"] == 1
    assert report.changed["accelerator marks stripped"] == 2
    # every entry is accounted for: read + added - removed = kept
    assert report.entries + sum(report.added.values()) - sum(report.removed.values()) == sum(report.kept.values())
    assert "\n".join(report.lines()).count("\n") >= 8


def test_split_keeps_each_catalog_on_one_side(tmp_path: Path):
    root = tmp_path / "locale"
    domains = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima gtk20 gtk30".split()
    for d in domains:
        write_catalog(root, "fr", d, [E("Shared message", "Message partagé"), *filler(d, 10)], plural=FR_PLURAL)
    for seed in range(4):
        splits = load_gettext("fr", roots=[root], seed=seed, valid_fraction=0.1, test_fraction=0.1)
        sides = splits.catalogs
        assert set(sides["train"]).isdisjoint(sides["test"]) and set(sides["train"]).isdisjoint(sides["valid"])
        assert set(sides["valid"]).isdisjoint(sides["test"])
        assert sorted(sides["train"] + sides["valid"] + sides["test"]) == sorted(domains)
        assert sides["test"] and sides["valid"]
        assert {"gtk20", "gtk30"} <= set(sides["train"]) or {"gtk20", "gtk30"}.isdisjoint(sides["train"])
        for name, corpus in splits.items():  # every message comes from a catalog of its side
            owners = {s.split(" message")[0] for s in corpus.src if s != "Shared message"}
            assert owners <= set(sides[name])
        held_out = set(splits.valid.src) | set(splits.test.src)
        assert held_out.isdisjoint(splits.train.src)  # "Shared message" stays in train only
        assert set(splits.valid.src).isdisjoint(splits.test.src)


def test_french_plural_gives_both_forms_and_iso_8859_1(tmp_path: Path):
    root = tmp_path / "locale"
    entries = [E("%d file", msgid_plural="%d files", msgstr_plural={0: "%d fichier", 1: "%d fichiers"}),
               E("Huge file", "Fichier énorme"), E("&Quit", "&Quitter")]
    write_catalog(root, "fr", "latin", entries, charset="ISO-8859-1", plural=FR_PLURAL)
    for d in ("a", "b", "c"):
        write_catalog(root, "fr", d, filler(d), plural=FR_PLURAL, mo=True)
    pairs = all_pairs(load_gettext("fr", roots=[root]))
    assert pairs["%d file"] == "%d fichier" and pairs["%d files"] == "%d fichiers"
    assert pairs["Huge file"] == "Fichier énorme"
    assert pairs["Quit"] == "Quitter"


def test_mo_reading_agrees_with_the_standard_library(zh_root: Path):
    path = zh_root / "zh_CN" / "LC_MESSAGES" / "viewer.mo"
    with open(path, "rb") as f:
        reference = gettext.GNUTranslations(f)
    for entry in polib.mofile(str(path)):
        if entry.msgid:
            assert reference.gettext(entry.msgid) == entry.msgstr


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
def test_msgfmt_compiled_mo_drops_fuzzy(tmp_path: Path):
    root = tmp_path / "locale"
    po = write_catalog(root, "de", "tool", [E("Open", "Öffnen"), E("Close", "Schließen", flags=["fuzzy"]),
                                            E("%d file", msgid_plural="%d files", msgstr_plural={0: "%d Datei", 1: "%d Dateien"})],
                       plural=FR_PLURAL.replace("n > 1", "n != 1"))
    subprocess.run(["msgfmt", "-o", str(po.with_suffix(".mo")), str(po)], check=True)
    po.unlink()
    for d in ("a", "b", "c"):
        write_catalog(root, "de", d, filler(d))
    pairs = all_pairs(load_gettext("de", roots=[root]))
    assert pairs["Open"] == "Öffnen" and "Close" not in pairs
    assert pairs["%d files"] == "%d Dateien"


def test_missing_language_is_one_short_line_naming_the_closest_ones(zh_root: Path):
    with pytest.raises(AttnlabError) as error:
        load_gettext("gettext:xh_CN", roots=[zh_root])
    message = str(error.value)
    assert "\n" not in message and len(message) < 300
    assert "'xh_CN'" in message and "zh_CN (4 catalogs)" in message
    assert "all 2: python -m attnlab.data.gettext_corpus --list" in message
    with pytest.raises(AttnlabError) as error:  # nothing close: no list, only where to look
        load_gettext("gettext:xx", roots=[zh_root])
    message = str(error.value)
    assert "'xx'" in message and "closest" not in message and "--list" in message


def test_bad_spec_and_too_few_catalogs(tmp_path: Path):
    with pytest.raises(AttnlabError, match="expected a language"):
        load_gettext("gettext:Chinese!", roots=[])
    write_catalog(tmp_path / "l", "de", "only", filler("only"))
    with pytest.raises(AttnlabError, match="at least 3"):
        load_gettext("de", roots=[tmp_path / "l"])


def test_language_matching(tmp_path: Path):
    root = tmp_path / "locale"
    for locale, domain in [("zh_CN.UTF-8", "a"), ("zh_CN.GB2312", "a"), ("zh", "a"), ("zh", "b"), ("zh_Hans", "c"),
                           ("zh_TW", "d"), ("fr", "e"), ("fr_CA", "e"), ("fr_CA", "f"), ("frp", "g"), ("fr_FR", "h"), ("fr_BE", "i"), ("fr_FR", "i")]:
        write_catalog(root, locale, domain, filler(domain, 1))
    chosen = {c.domain: c.locale for c in find_catalogs("zh_CN", roots=[root])}
    assert chosen == {"a": "zh_CN.UTF-8", "b": "zh", "c": "zh_Hans"}
    assert {c.domain: c.locale for c in find_catalogs("zh", roots=[root])} == chosen
    assert {c.domain: c.locale for c in find_catalogs("zh_TW", roots=[root])} == {"d": "zh_TW"}
    assert {c.domain: c.locale for c in find_catalogs("fr", roots=[root])} == {"e": "fr", "f": "fr_CA", "h": "fr_FR", "i": "fr_FR"}
    assert {c.domain: c.locale for c in find_catalogs("fr_FR", roots=[root])} == {"e": "fr", "h": "fr_FR", "i": "fr_FR"}
    assert Locale.parse("sr@latin") == Locale("sr", None, None, "latin")


def test_catalogs_option_adds_files_and_project_folders(tmp_path: Path, zh_root: Path):
    project = tmp_path / "myapp" / "po"
    project.mkdir(parents=True)
    for lang, text in [("zh_CN", "我的应用"), ("fr", "Mon application")]:
        po = polib.POFile()
        po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": lang}
        po.append(E("My application", text))
        po.save(str(project / f"{lang}.po"))
    chosen = find_catalogs("zh_CN", [tmp_path / "myapp"], roots=[zh_root])
    assert {c.domain for c in chosen} == {"editor", "viewer", "player", "mailer", "myapp"}
    assert all_pairs(load_gettext("zh_CN", [tmp_path / "myapp"], roots=[zh_root]))["My application"] == "我的应用"
    with pytest.raises(AttnlabError, match="no such file"):
        find_catalogs("zh_CN", [tmp_path / "missing"], roots=[])


def test_po_beside_its_mo_is_the_one_read(tmp_path: Path):
    root = tmp_path / "locale"
    write_catalog(root, "de", "tool", [E("Open", "Öffnen"), E("Close", "Schließen", flags=["fuzzy"])])
    write_catalog(root, "de", "tool", [E("Open", "Öffnen"), E("Close", "Schließen")], mo=True)
    (chosen,) = find_catalogs("de", roots=[root])
    assert chosen.path.suffix == ".po"


@pytest.mark.parametrize("source, target, expected", [
    ("Cance_l", "取消(_L)", ("Cancel", "取消")),
    ("Cance_l", "Annu_ler", ("Cancel", "Annuler")),
    ("_Save As…", "另存为(_A)…", ("Save As…", "另存为…")),
    ("E&xit", "&Quitter", ("Exit", "Quitter")),
    ("max_len must be %d", "max_len doit être %d", ("max_len must be %d", "max_len doit être %d")),
    ("__init__ of %(file_name)s", "__init__ de %(file_name)s", ("__init__ of %(file_name)s", "__init__ de %(file_name)s")),
    ("cmd 2>&1 && echo &amp;", "cmd 2>&1 && echo &amp;", ("cmd 2>&1 && echo &amp;", "cmd 2>&1 && echo &amp;")),
])
def test_accelerators(source, target, expected):
    assert strip_pair_accelerators(source, target) == expected


def test_plural_indices_and_families():
    assert plural_indices("nplurals=1; plural=0;") == (0, None)
    assert plural_indices("nplurals=2; plural=(n > 1);") == (0, 1)
    assert plural_indices("nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);") == (0, 2)
    assert plural_indices(None) == (0, 1)
    assert [catalog_family(d) for d in ("gtk30-properties", "gtk20", "postgres-15", "iso_639-3", "iso_3166_2", "libapt-pkg6.0")] == [
        "gtk", "gtk", "postgres", "iso", "iso", "libapt_pkg"]


def test_python_packages_locale_folders_are_searched(tmp_path: Path, monkeypatch):
    site_packages = tmp_path / "lib" / "site-packages"
    write_catalog(site_packages / "mypkg" / "locale", "fr", "mypkg", filler("mypkg", 2), plural=FR_PLURAL)
    write_catalog(site_packages / "web" / "contrib" / "admin" / "locale", "fr", "django", filler("django", 2))
    monkeypatch.setattr("site.getsitepackages", lambda: [str(site_packages)])
    chosen = {c.domain: c.path for c in find_catalogs("fr") if str(c.path).startswith(str(tmp_path))}
    assert set(chosen) == {"mypkg", "django"}


def test_catalogs_the_user_names_are_never_skipped_silently(tmp_path: Path, zh_root: Path):
    """A machine's broken catalog may be skipped (and reported); one given with --catalogs is an error."""
    garbage = tmp_path / "zh_CN" / "LC_MESSAGES" / "broken.mo"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x00not a catalog" * 40)
    with pytest.raises(AttnlabError, match=r"--catalogs: .*broken.mo .*not a readable"):
        load_gettext("zh_CN", [garbage], roots=[zh_root])
    with pytest.raises(AttnlabError, match=r"--catalogs: .*broken.mo"):
        load_gettext("zh_CN", [tmp_path], roots=[zh_root])
    other = tmp_path / "other"
    write_catalog(other, "de", "only", filler("only"))
    with pytest.raises(AttnlabError, match=r"--catalogs .*other: no .po/.mo catalog for 'zh_CN'"):
        find_catalogs("zh_CN", [other], roots=[])
