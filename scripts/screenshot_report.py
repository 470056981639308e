"""Screenshot an nmt-report page in headless Chromium, to look at it as a reader would.

    python scripts/screenshot_report.py runs/x/report.html --output runs/x/report.png [--height 3000]

Chromium (Debian: apt-get install -y chromium) runs with every host name unresolvable, so the
picture is of the page as it shows offline: anything it tried to fetch from elsewhere would be
missing from it. The screenshot is the top `--width` x `--height` pixels of the page.
Without Chromium it exits with code 2 and one line saying how to install it; code 1 if Chromium fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The first Chromium on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: Path, output: Path, width: int = 1200, height: int = 3000, timeout: float = 120) -> None:
    """Render `page` headless and write its top width x height pixels to `output` (PNG)."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError(f"no Chromium found (tried {', '.join(BROWSERS)}); install it: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: nothing read from or left in ~/.config
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no host name resolves
            f"--window-size={width},{height}",
            f"--screenshot={output.resolve()}",
            page.resolve().as_uri(),
        ]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not output.is_file():
        raise RuntimeError(f"{browser} exited with {result.returncode} and no {output}: {result.stderr.strip()[-500:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the report's HTML file")
    parser.add_argument("--output", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    if not args.page.is_file():
        print(f"screenshot_report.py: error: {args.page}: no such file; give the HTML nmt-report wrote", file=sys.stderr)
        return 2
    try:
        screenshot(args.page, args.output, args.width, args.height)
    except FileNotFoundError as err:
        print(f"screenshot_report.py: error: {err}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"screenshot_report.py: error: {err}", file=sys.stderr)
        return 1
    print(f"screenshot_report.py: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
