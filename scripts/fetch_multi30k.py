#!/usr/bin/env python3
"""Put the Multi30k task-1 raw corpus (gzip-compressed text) into a data directory.

Files are ``{split}.{lang}.gz`` for split in train, val, test_2016_flickr and lang in
de, en, fr, cs. Each file is taken from the first available source:

1. ``--mirror DIR``;
2. ``$NMT_DATA_MIRROR/multi30k`` when that variable is set;
3. the first existing ``../shared/data/multi30k`` or ``../../shared/data/multi30k``,
   looked up from the current directory and then from the repository root;
4. a download from a pinned commit of https://github.com/multi30k/dataset.

Every file is checked against a fixed sha256 table, so all sources yield identical bytes.
Standard library only, so it runs before the project (or any dependency) is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

PROG = "fetch_multi30k"
SPLITS: tuple[str, ...] = ("train", "val", "test_2016_flickr")
LANGS: tuple[str, ...] = ("de", "en", "fr", "cs")
DEFAULT_DEST = Path("data") / "multi30k"
MIRROR_ENV = "NMT_DATA_MIRROR"
# Pinned to a commit rather than a branch so the bytes (and so the hashes) cannot drift.
URL_TEMPLATE = "https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw/{name}"
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 16
HINT = f"pass --mirror DIR with the Multi30k .gz files (or set {MIRROR_ENV})"

SHA256: dict[str, str] = {
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}

CITATION_NOTE = """\
Multi30k terms: the dataset is for non-commercial research and educational use only
(it is partly derived from Flickr30K; image use must follow the Flickr Terms of Use).
Please cite: Elliott, Frank, Sima'an, Specia (2016), "Multi30K: Multilingual English-German
Image Descriptions", Proceedings of the 5th Workshop on Vision and Language, pp. 70-74.
French data: Elliott et al. (2017), WMT17; Czech data: Barrault et al. (2018), WMT18."""


class FetchError(Exception):
    """A failure to report as one ``fetch_multi30k: error:`` line with exit code 2."""


def file_names(splits: Sequence[str], langs: Sequence[str]) -> list[str]:
    """Return the ``{split}.{lang}.gz`` names to fetch, splits outermost."""
    return [f"{split}.{lang}.gz" for split in splits for lang in langs]


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks so large files stay cheap."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def repo_root() -> Path:
    """Return the repository root (this script lives in ``<root>/scripts/``)."""
    return Path(__file__).resolve().parents[1]


def shared_mirror_candidates(cwd: Path, root: Path) -> list[Path]:
    """Return the shared-mirror locations to probe, in priority order, without duplicates."""
    candidates: list[Path] = []
    for base in (cwd, root):
        for up in ("..", "../.."):
            path = (base / up / "shared" / "data" / "multi30k").resolve()
            if path not in candidates:
                candidates.append(path)
    return candidates


def find_shared_mirror(cwd: Path, root: Path) -> Path | None:
    """Return the first existing shared mirror directory, or None."""
    for path in shared_mirror_candidates(cwd, root):
        if path.is_dir():
            return path
    return None


def open_url(url: str) -> BinaryIO:
    """Open ``url`` for reading; a module-level function so tests can stub the network."""
    # The timeout bounds each blocking socket operation, so a stalled server cannot hang us.
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)


def write_verified(name: str, opener: Callable[[], BinaryIO], dest_dir: Path, origin: str) -> None:
    """Stream ``opener()`` into ``dest_dir/name`` via a ``.part`` file, checking its sha256.

    The final name only ever appears through ``os.replace`` of a fully written, verified file,
    so an interrupted or corrupt transfer never leaves a plausible-looking file behind.
    """
    expected = SHA256[name]
    part = dest_dir / f"{name}.part"
    digest = hashlib.sha256()
    try:
        with opener() as source, part.open("wb") as sink:
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                digest.update(chunk)
                sink.write(chunk)
        actual = digest.hexdigest()
        if actual != expected:
            raise FetchError(
                f"{name}: sha256 mismatch for {origin} (expected {expected}, got {actual}); "
                f"the source is corrupt or a different version, {HINT}"
            )
        os.replace(part, dest_dir / name)
    finally:
        part.unlink(missing_ok=True)


def copy_from(name: str, source: Path, dest_dir: Path) -> str:
    """Copy a mirror file into ``dest_dir`` (verified) and return the provenance note."""
    try:
        write_verified(name, lambda: source.open("rb"), dest_dir, str(source))
    except OSError as exc:
        raise FetchError(f"{name}: copy from {source} failed ({exc}); {HINT}") from exc
    return f"copied from {source}"


def explicit_mirror(args: argparse.Namespace) -> tuple[Path, str] | None:
    """Return the mirror the user named (``--mirror`` or the env var) and how it was named."""
    if args.mirror is not None:
        return Path(args.mirror), "--mirror"
    env_value = os.environ.get(MIRROR_ENV)
    if env_value:
        return Path(env_value) / "multi30k", f"${MIRROR_ENV}"
    return None


def fetch_one(name: str, dest_dir: Path, args: argparse.Namespace, shared: Path | None) -> str:
    """Make ``dest_dir/name`` a verified copy and return a note saying where it came from."""
    target = dest_dir / name
    replacing = ""
    if target.is_file():
        if sha256_of(target) == SHA256[name]:
            return "ok (already present)"
        replacing = " (replaced a file with a wrong hash)"

    named = explicit_mirror(args)
    if named is not None:
        # A mirror the user named is authoritative: silently going to the network instead
        # would hide a broken mirror setup.
        mirror, how = named
        source = mirror / name
        if not source.is_file():
            raise FetchError(f"{name}: not found in mirror {mirror} (from {how}); {HINT}")
        return copy_from(name, source, dest_dir) + replacing

    if shared is not None and (shared / name).is_file():
        return copy_from(name, shared / name, dest_dir) + replacing

    if args.no_download:
        raise FetchError(f"{name}: no local mirror has it and --no-download was given; {HINT}")
    url = URL_TEMPLATE.format(name=name)
    try:
        write_verified(name, lambda: open_url(url), dest_dir, url)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{name}: download from {url} failed ({exc}); {HINT}") from exc
    return f"downloaded from {url}{replacing}"


def unique(items: Sequence[str]) -> list[str]:
    """Drop repeated items while keeping their first-seen order."""
    return list(dict.fromkeys(items))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fetch the Multi30k task-1 raw corpus (.gz) and verify sha256.",
    )
    parser.add_argument(
        "--dest",
        default=str(DEFAULT_DEST),
        help=f"destination directory (default: {DEFAULT_DEST})",
    )
    parser.add_argument(
        "--mirror",
        metavar="DIR",
        help="directory holding {split}.{lang}.gz files to copy from",
    )
    parser.add_argument(
        "--langs",
        nargs="+",
        choices=LANGS,
        default=list(LANGS),
        help="languages to fetch (default: all)",
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=SPLITS,
        default=list(SPLITS),
        help="splits to fetch (default: all)",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading when no local mirror has a file",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch the requested files; return 0 on success, 2 on any failure."""
    args = parse_args(argv)
    dest_dir = Path(args.dest)
    shared = find_shared_mirror(Path.cwd(), repo_root())
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        for name in file_names(unique(args.splits), unique(args.langs)):
            print(f"{name}: {fetch_one(name, dest_dir, args, shared)}", flush=True)
    except FetchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # e.g. an unwritable destination: still one line, never a traceback.
        print(
            f"{PROG}: error: {exc}; check --dest {dest_dir} is writable",
            file=sys.stderr,
        )
        return 2
    print(CITATION_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
