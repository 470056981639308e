"""Tests for scripts/fetch_multi30k.py, using tmp_path only (no network, no working directory)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).parents[2]
SCRIPT = REPO_ROOT / "scripts" / "fetch_multi30k.py"
PREFIX = "fetch_multi30k: error:"


def load_script() -> ModuleType:
    """Import the script as a module; it is not part of an installed package."""
    spec = importlib.util.spec_from_file_location("fetch_multi30k", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fm = load_script()

# Resolved against the repo root, not the working directory, so the skip does not
# depend on where pytest is launched from.
REAL_MIRROR_CANDIDATES = [
    Path("/work/shared/data/multi30k"),
    (REPO_ROOT / ".." / "shared" / "data" / "multi30k").resolve(),
]
REAL_MIRROR = next((p for p in REAL_MIRROR_CANDIDATES if p.is_dir()), None)


@pytest.fixture(autouse=True)
def no_network_no_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any download attempt fail loudly and hide the env var and shared mirrors."""

    def refuse(url: str) -> io.BytesIO:
        raise AssertionError(f"test tried to reach the network: {url}")

    monkeypatch.setattr(fm, "open_url", refuse)
    monkeypatch.setattr(fm, "find_shared_mirror", lambda cwd, root: None)
    monkeypatch.delenv(fm.MIRROR_ENV, raising=False)


def gz_bytes(text: str) -> bytes:
    """Return ``text`` gzip-compressed with a fixed mtime, so bytes are reproducible."""
    return gzip.compress(text.encode("utf-8"), mtime=0)


@pytest.fixture
def fake_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror with small val.de/val.en files, whose hashes the module will accept."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    table = {}
    for lang, line in (("de", "Ein Hund läuft.\n"), ("en", "A dog runs.\n")):
        data = gz_bytes(line * 3)
        (mirror / f"val.{lang}.gz").write_bytes(data)
        table[f"val.{lang}.gz"] = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(fm, "SHA256", table)
    return mirror


def run(*argv: str | Path) -> int:
    """Call the script's main with string arguments."""
    return fm.main([str(a) for a in argv])


def test_copy_lands_with_identical_bytes(fake_mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    rc = run(
        "--dest",
        dest,
        "--mirror",
        fake_mirror,
        "--splits",
        "val",
        "--langs",
        "de",
        "en",
    )
    out = capsys.readouterr().out
    assert rc == 0
    for name in ("val.de.gz", "val.en.gz"):
        assert (dest / name).read_bytes() == (fake_mirror / name).read_bytes()
        assert f"{name}: copied from {fake_mirror / name}" in out
    # Only the final names: no .part file survives a successful copy.
    assert sorted(p.name for p in dest.iterdir()) == ["val.de.gz", "val.en.gz"]
    assert out.count("Multi30k terms") == 1  # citation note printed once


def test_second_run_skips_present_file(fake_mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    args = ("--dest", dest, "--mirror", fake_mirror, "--splits", "val", "--langs", "de")
    assert run(*args) == 0
    capsys.readouterr()
    # With the source gone, success proves the second run never reads the mirror.
    (fake_mirror / "val.de.gz").unlink()
    assert run(*args) == 0
    assert "val.de.gz: ok (already present)" in capsys.readouterr().out


def test_wrong_hash_is_exit_2_one_line(
    fake_mirror: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(fm.SHA256, "val.en.gz", "0" * 64)
    dest = tmp_path / "dest"
    rc = run("--dest", dest, "--mirror", fake_mirror, "--splits", "val", "--langs", "en")
    err_lines = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert len(err_lines) == 1
    assert err_lines[0].startswith(PREFIX)
    assert "val.en.gz" in err_lines[0] and "0" * 64 in err_lines[0]
    assert not any(dest.iterdir())  # neither the bad file nor its .part survives


def test_missing_mirror_file_no_download_is_exit_2(
    fake_mirror: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(fm.SHA256, "val.fr.gz", "1" * 64)
    rc = run(
        "--dest",
        tmp_path / "dest",
        "--mirror",
        fake_mirror,
        "--no-download",
        "--splits",
        "val",
        "--langs",
        "fr",
    )
    err_lines = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert len(err_lines) == 1
    assert err_lines[0].startswith(PREFIX) and "val.fr.gz" in err_lines[0]
    assert "--mirror" in err_lines[0]


def test_no_source_with_no_download_is_exit_2(fake_mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run("--dest", tmp_path / "dest", "--no-download", "--splits", "val", "--langs", "de")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(PREFIX) and "val.de.gz" in err and err.count("\n") == 1


def test_env_mirror_is_used(
    fake_mirror: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_root = tmp_path / "envroot"
    env_root.mkdir()
    fake_mirror.rename(env_root / "multi30k")
    monkeypatch.setenv(fm.MIRROR_ENV, str(env_root))
    dest = tmp_path / "dest"
    assert run("--dest", dest, "--splits", "val", "--langs", "en") == 0
    assert f"copied from {env_root / 'multi30k' / 'val.en.gz'}" in capsys.readouterr().out


def test_download_path_uses_part_then_rename(
    fake_mirror: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = (fake_mirror / "val.de.gz").read_bytes()
    seen: list[str] = []

    def fake_open(url: str) -> io.BytesIO:
        seen.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(fm, "open_url", fake_open)
    dest = tmp_path / "dest"
    assert run("--dest", dest, "--splits", "val", "--langs", "de") == 0
    assert seen == [fm.URL_TEMPLATE.format(name="val.de.gz")]
    assert (dest / "val.de.gz").read_bytes() == payload
    assert not (dest / "val.de.gz.part").exists()
    assert "val.de.gz: downloaded from https://" in capsys.readouterr().out


@pytest.mark.skipif(
    REAL_MIRROR is None,
    reason="real Multi30k mirror not found at /work/shared/data/multi30k or ../shared/data/multi30k (relative to the repo root)",
)
def test_real_mirror_hashes_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    rc = run(
        "--dest",
        dest,
        "--mirror",
        REAL_MIRROR,
        "--langs",
        "de",
        "en",
        "--splits",
        "val",
    )
    assert rc == 0, capsys.readouterr().err
    for name in ("val.de.gz", "val.en.gz"):
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == fm.SHA256[name]
    assert len(gzip.decompress((dest / "val.en.gz").read_bytes()).splitlines()) == 1014
