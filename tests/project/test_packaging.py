"""The wheel and its extras: each process's extra installs what it imports; only the detector's has torch.

The images run `pip install ".[worker,web]"` and `pip install ".[detector]"`; here the wheel goes into
a clean venv per process (worker, web) and the modules `nonsite <command>` loads are imported there.
The detector extra pulls torch with its CUDA wheels (gigabytes), so it is checked by resolution only
(`pip install --dry-run --report`). Every process is also checked statically: each third-party module
its code reaches (lazy imports inside functions included) comes from a distribution its extra resolves.
Uses the pip cache (where the index's responses allow caching). Measured: about 2 minutes, most of it
the detector resolution and the worker venv.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("contract", "nonsite", "detector", "stream", "history", "web")
# What each image runs: `nonsite <command>` imports these (nonsite/cli.py's handlers, stream.cli.worker).
ENTRY = {
    "worker": ("nonsite.cli", "nonsite.devtools.kafka_cli", "stream.cli", "stream.runtime.app",
               "stream.runtime.agents"),
    "web": ("nonsite.cli", "web.cli", "web.app"),
    "detector": ("nonsite.cli", "detector.cli", "detector.inference", "detector.tracking"),
}
EXTRAS = {"worker": "worker", "web": "web", "detector": "detector"}


def module_file(name: str) -> Path | None:
    """The source file of a project module, or None (e.g. a name imported from a module)."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Every absolute module an import statement in the file names, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_closure(entries) -> tuple[set[str], set[str]]:
    """(project modules reached, third-party top-level modules they import) from the entry modules."""
    reached: set[str] = set()
    third: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        top = name.split(".")[0]
        if top not in PROJECT:
            third.add(top)
            continue
        path = module_file(name)
        if name in reached or path is None:
            continue
        reached.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        todo.extend(imported_names(path))
    return reached, {t for t in third if t not in sys.stdlib_module_names and t != "__future__"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project wheel, built from a copy of what the images COPY (the checkout stays untouched)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PROJECT:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    pip(sys.executable, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(out), cwd=source)
    (built,) = out.glob("nonsite-*.whl")
    return built


def pip(python, *args: str, cwd: Path) -> str:
    """Run pip with the given interpreter, outside the checkout; fails the test with pip's output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), "-m", "pip", "-q", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def resolve(wheel: Path, extra: str, tmp_path: Path) -> set[str]:
    """The distributions `pip install wheel[extra]` would install into an empty environment."""
    report = tmp_path / f"{extra}.json"
    pip(sys.executable, "install", "--dry-run", "--ignore-installed", "--report", str(report),
        f"{wheel}[{extra}]", cwd=tmp_path)
    return {normalise(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}


@pytest.mark.parametrize("process", list(ENTRY))
def test_each_extra_resolves_every_module_its_process_imports(wheel, process, tmp_path):
    resolved = resolve(wheel, EXTRAS[process], tmp_path)
    providers = packages_distributions()
    for module in sorted(import_closure(ENTRY[process])[1]):
        dists = {normalise(d) for d in providers.get(module, [])}
        assert dists, f"{module} is installed by no distribution in the shared venv"
        assert dists & resolved, f"{process}: imports {module}, which nonsite[{EXTRAS[process]}] does not install"
    if process == "detector":
        assert {"torch", "ultralytics", "opencv-python-headless", "ai-edge-litert", "lap"} <= resolved
    else:
        assert "torch" not in resolved, f"nonsite[{process}] pulls torch"


def test_nothing_imports_orjson_and_it_is_no_dependency():
    assert all("orjson" not in import_closure(entries)[1] for entries in ENTRY.values())
    assert "orjson" not in (ROOT / "pyproject.toml").read_text()


RUNTIME = {  # the entry modules plus what the running process loads by name (the rocksdb:// store)
    "worker": ENTRY["worker"] + ("faust.stores.rocksdb", "rocksdict"),
    "web": ENTRY["web"],
}
PROBE = """
import importlib, importlib.util, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"modules": sorted(sys.modules), "torch": importlib.util.find_spec("torch") is not None,
                  "files": sorted({m.__file__ for n, m in list(sys.modules.items())
                                   if n.split(".")[0] in ("nonsite", "stream", "web", "contract", "detector")
                                   and getattr(m, "__file__", None)})}))
"""


def clean_venv(wheel: Path, extra: str, where: Path) -> Path:
    """A new venv holding only the wheel with this extra; returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    pip(where / "bin" / "python", "install", f"{wheel}[{extra}]", cwd=where.parent)
    return where / "bin"


def probe(bin_dir: Path, modules) -> dict:
    """Import the modules in that venv, away from the checkout; what got loaded and whether torch exists."""
    done = subprocess.run([str(bin_dir / "python"), "-c", PROBE, *modules], cwd=bin_dir.parent.parent,
                          capture_output=True, text=True, timeout=300, env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("process", list(RUNTIME))
def test_process_imports_in_a_clean_venv_with_only_its_extra(wheel, process, tmp_path):
    bin_dir = clean_venv(wheel, EXTRAS[process], tmp_path / "venv")
    loaded = probe(bin_dir, RUNTIME[process])
    assert not loaded["torch"], f"nonsite[{process}] installs torch"
    assert loaded["files"] and all(f.startswith(str(tmp_path / "venv")) for f in loaded["files"]), \
        "imported the checkout, not the wheel"
    if process == "web":
        assert not {m.split(".")[0] for m in loaded["modules"]} & {"faust", "mode"}, "web.app imports Faust"
    assert subprocess.run([str(bin_dir / "nonsite"), "--help"], capture_output=True, timeout=60).returncode == 0
