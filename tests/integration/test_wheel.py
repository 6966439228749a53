"""The wheel works outside the checkout: built from the sources, installed into a clean venv with its
locked dependencies, it adds one top-level name (`forewarn`) and runs the demo from an unrelated folder
with its bundled config and templates.

Uses the uv pinned in the test extra (`./dev test` installs it) and uv's cache, so it takes seconds.
A missing tool fails the test with what to do; it never skips, so a broken wheel cannot hide in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "forewarn"
DEMO_OUTPUTS = ("incidents.jsonl", "outbox_sms.jsonl", "outbox_email.jsonl", "dead_letters.jsonl", "report.html",
                "events.jsonl")


def _linked_folders() -> list[Path]:
    """The top-level folders forewarn/ links to (connectors/, flows/, config/, ...)."""
    links = sorted(entry for entry in PACKAGE.iterdir() if entry.is_symlink())
    assert links, "forewarn/ links to no folders: the layout this test checks has changed"
    folders = []
    for link in links:
        target = link.resolve()
        assert target.parent == ROOT and target.is_dir(), (
            f"forewarn/{link.name} -> {os.readlink(link)} must name a folder at the top of the repository")
        folders.append(target)
    return folders


def _uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        pytest.fail("uv is not installed in this environment; it is pinned in the test extra: run `./dev test` "
                    "(or `uv sync --extra test`) instead of a bare pytest")
    return str(find_uv_bin())


def _env() -> dict[str, str]:
    """This environment without anything that would put the checkout or its venv on the path."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["NO_COLOR"] = "1"
    return env


def _run(args: list[str], cwd: Path, what: str) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{what} failed ({done.returncode}): {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _copy_sources(dest: Path) -> None:
    """What the Dockerfile's builder copies: the top-level files, forewarn/ with its links, the linked folders.

    Building from a copy keeps setuptools' build/ and egg-info out of the checkout (and stale files in
    the checkout's build/ out of the wheel).
    """
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir()
    for item in ROOT.iterdir():
        if item.is_file() and not item.is_symlink():
            shutil.copy2(item, dest / item.name)
    shutil.copytree(PACKAGE, dest / "forewarn", symlinks=True, ignore=skip)
    for folder in _linked_folders():
        shutil.copytree(folder, dest / folder.name, symlinks=True, ignore=skip)


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, env=_env())
    return Path(out.stdout.strip())


def test_the_lock_matches_pyproject() -> None:
    """`./dev` installs with `uv sync --frozen`, trusting uv.lock: it must still satisfy pyproject.toml."""
    done = subprocess.run([_uv(), "lock", "--check", "--python", sys.executable, "--project", str(ROOT)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"uv.lock does not match pyproject.toml: run `./dev lock` (uv lock) and commit uv.lock\n{done.stderr}")


def test_dockerfile_builder_copies_every_linked_folder() -> None:
    """Docker cannot run here: at least check the builder stage copies what forewarn/ links to."""
    copied = set(re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    missing = {folder.name for folder in _linked_folders()} - copied
    assert not missing, f"the Dockerfile does not COPY {sorted(missing)}: forewarn/ links to them"
    assert "forewarn" in copied


def test_the_wheel_installs_one_top_level_name_and_runs_the_demo_outside_the_checkout(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    uv = _uv()
    lock = ROOT / "uv.lock"
    assert lock.is_file(), "uv.lock is missing: run `./dev lock` (uv lock) and commit it"
    work = tmp_path_factory.mktemp("wheel")
    assert ROOT not in work.parents, f"the scratch folder {work} must lie outside the checkout {ROOT}"

    # Build from a copy of the sources.
    src, dist = work / "src", work / "dist"
    _copy_sources(src)
    # As the README says: `uv build`, the sdist, then the wheel from the sdist.
    _run([uv, "build", "--quiet", "--python", sys.executable, "--out-dir", str(dist), str(src)], work, "uv build")
    wheels = list(dist.glob("forewarn-*.whl"))
    assert len(wheels) == 1 and len(list(dist.glob("forewarn-*.tar.gz"))) == 1, sorted(dist.iterdir())
    wheel = wheels[0]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    in_wheel = {PurePosixPath(name).parts[0] for name in names}
    assert {top for top in in_wheel if not top.endswith(".dist-info")} == {"forewarn"}, sorted(in_wheel)
    for packaged in ("forewarn/config/default.yaml", "forewarn/config/compose.yaml", "forewarn/py.typed"):
        assert packaged in names, f"{packaged} is not in the wheel"
    assert any(re.fullmatch(r"forewarn/config/templates/[^/]+\.j2", name) for name in names), "no templates"

    # A clean venv outside the checkout; the wheel's dependencies constrained to the lock.
    venv = work / "venv"
    python = venv / "bin" / "python"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], work, "uv venv")
    constraints = work / "constraints.txt"
    _run([uv, "export", "--quiet", "--frozen", "--no-hashes", "--no-emit-project", "--all-extras", "--no-header",
          "--project", str(ROOT), "--output-file", str(constraints)], work, "uv export")
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--constraints", str(constraints),
          str(wheel)], work, "uv pip install the wheel")

    # What the wheel itself adds to site-packages: exactly forewarn/ and its .dist-info.
    site = _site_packages(python)
    _run([uv, "pip", "uninstall", "--quiet", "--python", str(python), "forewarn"], work, "uv pip uninstall")
    before = {entry.name for entry in site.iterdir()}
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(wheel)], work,
         "uv pip install --no-deps the wheel")
    added = {entry.name for entry in site.iterdir()} - before
    assert {name for name in added if not name.endswith(".dist-info")} == {"forewarn"}, sorted(added)
    assert [name for name in added if name.endswith(".dist-info")] == [wheel.name.split("-py")[0] + ".dist-info"]
    assert not (site / "forewarn").is_symlink()
    for pth in site.glob("*.pth"):
        assert str(ROOT) not in pth.read_text(), f"{pth} puts the checkout on the path"

    # Import it from an unrelated folder: everything comes from the venv, nothing from the checkout.
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    # Another project's empty config/templates here must not be taken for the bundled templates.
    (elsewhere / "config" / "templates").mkdir(parents=True)
    subpackages = sorted(folder.name for folder in _linked_folders() if (folder / "__init__.py").is_file())
    probe = (
        "import importlib, json, sys\n"
        "from forewarn.settings import BUNDLED_CONFIG\n"
        f"names = ['forewarn'] + ['forewarn.' + name for name in {subpackages!r}]\n"
        "print(json.dumps({'files': {n: importlib.import_module(n).__file__ for n in names},\n"
        "                  'config': str(BUNDLED_CONFIG), 'path': sys.path}))\n"
    )
    seen = json.loads(_run([str(python), "-c", probe], elsewhere, "importing forewarn from the venv"))
    on_path = [Path(entry).resolve() for entry in seen["path"] if entry]
    assert not [entry for entry in on_path if entry == ROOT or ROOT in entry.parents], seen["path"]
    for name, file in [*seen["files"].items(), ("BUNDLED_CONFIG", seen["config"])]:
        where = Path(file).resolve()
        assert site in where.parents and ROOT not in where.parents, f"{name} comes from {where}, not from {site}"
    config = Path(seen["config"])
    assert (config / "default.yaml").is_file() and any((config / "templates").glob("*.j2")), config

    # The demo, run by the installed command from the unrelated folder.
    out = elsewhere / "demo-out"
    printed = _run([str(venv / "bin" / "forewarn"), "demo", "--customers", "2000", "--out", str(out)], elsewhere,
                   "forewarn demo from the installed wheel")
    for name in DEMO_OUTPUTS:
        assert (out / name).is_file(), f"the demo wrote no {name}:\n{printed}"
    assert (out / "incidents.jsonl").read_text().strip(), f"the demo found no incidents:\n{printed}"
    assert (out / "outbox_sms.jsonl").read_text().strip(), f"the demo warned nobody by SMS:\n{printed}"
    assert "<img" in (out / "report.html").read_text(), "the report has no plots"
