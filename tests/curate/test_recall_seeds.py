"""The code recall seeds come from infir's required packages only, so the curated corpus (and every
number of a recipe after it) does not change with what else is installed beside infir."""

from __future__ import annotations

import sysconfig
from importlib.metadata import distribution, requires
from pathlib import Path

from infir.curate.recall.seeds import _dependency_sources, _relative_to_site_packages, python_code


def _install_someone_elses_tool(site: Path) -> None:
    """A package with a dist-info, as pip would leave it: files importlib.metadata finds."""
    package = site / "someone_elses_tool"
    package.mkdir(parents=True)
    names = [f"module_{i}.py" for i in range(300)]
    for name in names:
        (package / name).write_text("def helper(value):\n    return value * 2\n" * 40)
    info = site / "someone_elses_tool-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: someone-elses-tool\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"someone_elses_tool/{name},,\n" for name in names))


def test_code_seeds_do_not_change_when_another_package_is_installed(tmp_path, monkeypatch):
    before = [(d["id"], d["text"]) for d in python_code(n=60)]
    site = tmp_path / "site-packages"
    _install_someone_elses_tool(site)
    monkeypatch.syspath_prepend(str(site))
    real = sysconfig.get_paths()
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: {**real, "purelib": str(site)})
    assert distribution("someone-elses-tool").version == "1.0"  # installed, as far as Python can tell
    after = [(d["id"], d["text"]) for d in python_code(n=60)]
    assert after == before
    assert not any("someone_elses_tool" in str(p) for p in _dependency_sources())


def test_code_seeds_are_files_of_the_required_distributions():
    required = {
        r.split(">")[0].split("<")[0].split("=")[0].strip() for r in requires("infir") if "extra ==" not in r
    }
    owned = set()
    for name in required:
        dist = distribution(name)
        owned.update(Path(dist.locate_file(f)) for f in dist.files or [])
    sources = _dependency_sources()
    assert len(sources) > 600 and sources <= owned
    assert not any("test" in _relative_to_site_packages(p).lower() for p in sources)


def test_the_order_of_seed_files_does_not_depend_on_where_the_venv_is():
    a = Path("/opt/one/.venv/lib/python3.11/site-packages/torch/nn/functional.py")
    b = Path("/home/someone/env/lib/python3.11/site-packages/torch/nn/functional.py")
    assert _relative_to_site_packages(a) == _relative_to_site_packages(b) == "torch/nn/functional.py"
