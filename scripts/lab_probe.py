"""Check a JupyterLab served from the tcrp_lab image, over HTTP, as a learner's browser would meet it.

    python scripts/lab_probe.py --url http://127.0.0.1:18888 --token TOKEN [--minimal]

Waits (bounded) for ``/api/status`` to answer 200, then checks that ``/`` opens the first lesson of
the student edition, that the news feed and the update check are off, that both editions
(./notebooks and ./notebooks/solutions) were copied in, and the files their lessons link to.
``--minimal`` stops after ``/api/status`` (for Binder's ``jupyter notebook`` launch). Standard
library only; exits non-zero with the reason on failure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FIRST_LESSON = "notebooks/00_start_here.ipynb"   # the student edition; worked answers in notebooks/solutions/
EDITIONS = ("notebooks", "notebooks/solutions")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # let the probe read the 302 itself
        return None


class Lab:
    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token
        self.opener = urllib.request.build_opener(NoRedirect)

    def request(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str, method: str = "GET", expect: int = 200) -> object:
        status, _, body = self.request(path, method)
        check(status == expect, f"{method} {path} answered {status}, not {expect}: {body[:200]!r}")
        return json.loads(body) if body else None


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"lab probe: {message}")


def wait_for_status(lab: Lab, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, body = lab.request("/api/status")
            if status == 200:
                return json.loads(body)
            problem = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:  # refused, reset or cut short while starting
            problem = str(exc) or type(exc).__name__
        check(time.monotonic() < deadline, f"/api/status did not answer 200 within {timeout} s ({problem})")
        time.sleep(0.5)  # the server is still starting: poll again, bounded by the deadline


def full_checks(lab: Lab) -> None:
    status, headers, _ = lab.request("/")
    expected = "/lab/tree/" + FIRST_LESSON
    location = headers.get("Location", "")
    check(status == 302 and location.split("?")[0].endswith(expected),
          f"/ should open {expected}, but answered {status} -> {location!r}")

    check(lab.json("/lab/api/news") == {"news": []}, "the Jupyter news feed is not off")
    check(lab.json("/lab/api/update") == {"notification": None}, "the update check is not off")
    # overrides.json becomes the defaults of the settings schema the browser receives
    schema = lab.json("/lab/api/settings/@jupyterlab/apputils-extension:notification")["schema"]
    defaults = {key: prop.get("default") for key, prop in schema["properties"].items()}
    check(defaults.get("fetchNews") == "false" and defaults.get("checkForUpdates") is False,
          f"overrides.json is not applied to the notification settings: {defaults}")

    count = 0
    for folder, wanted in notebooks().items():
        served = {item["name"] for item in lab.json(f"/api/contents/{folder}")["content"]}
        check(wanted <= served, f"notebooks missing from {folder} in the image: {sorted(wanted - served)}")
        count += len(wanted)

    links = linked_files()
    for path in links:
        status, _, _ = lab.request(f"/api/contents/{path}?content=0")
        check(status == 200, f"a lesson links to {path}, which the image does not serve ({status})")
    print(f"lab probe: / opens {expected}; news and update check off; {count} notebooks of both editions "
          f"and {len(links)} files they link to served")


def notebooks() -> dict[str, set[str]]:
    """The notebooks of each edition in this checkout, by folder relative to the repository root."""
    root = NOTEBOOKS.parent
    return {folder: {p.name for p in (root / folder).glob("*.ipynb")} for folder in EDITIONS}


def linked_files() -> set[str]:
    """Repository files the lessons' markdown links to (``[..](../docs/TCRP.md#3)``), relative to the root."""
    root = NOTEBOOKS.parent.resolve()
    found = set()
    for folder in EDITIONS:
        for notebook in (root / folder).glob("*.ipynb"):
            for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
                if cell["cell_type"] != "markdown":
                    continue
                for target in re.findall(r"\]\(([^)\s#]+)", "".join(cell["source"])):
                    path = (notebook.parent / target).resolve()
                    if "://" not in target and path.is_file() and path.is_relative_to(root):
                        found.add(path.relative_to(root).as_posix())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="where JupyterLab is published, e.g. http://127.0.0.1:8888")
    parser.add_argument("--token", required=True)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for /api/status")
    parser.add_argument("--minimal", action="store_true", help="only wait for /api/status")
    args = parser.parse_args(argv)
    lab = Lab(args.url, args.token)
    status = wait_for_status(lab, args.timeout)
    print(f"lab probe: {args.url}/api/status -> 200 {status}")
    if not args.minimal:
        full_checks(lab)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
