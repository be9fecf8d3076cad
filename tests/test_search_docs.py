"""The README's set-up commands (a virtual environment first: Debian 12 refuses a system-wide
pip install), CI running the README's test command exactly, and CONTRIBUTING's map."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = "python3 -m venv .venv && . .venv/bin/activate && "


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", readme, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_setup_makes_a_virtual_environment_first() -> None:
    main, tests = _setup_commands()
    assert main == VENV + "pip install -e . && kb search mesenchymal"
    assert tests == VENV + "pip install -e '.[test]' && python -m pytest -q"


def test_readme_says_what_browser_tests_need_and_how_to_skip_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Chromium" in readme and ".ci/run" in readme
    assert 'python -m pytest -q -m "not slow and not browser"' in readme


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _setup_commands()[1] in ci.splitlines()


def test_contributing_maps_every_package_and_how_to_correct_a_fact() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for path in ("kb/evidence/", "kb/formats/", "kb/seed/", "kb/ingest/build.py", ".ci/run",
                 "kb/datasette/"):
        assert f"`{path}`" in text or f"`{path}" in text, path
        assert (ROOT / path.rstrip("/")).exists(), path
    section = text[text.index("## Correcting a curated fact"):]
    assert "kb build --offline --out kb.db" in section and "sources" in section


def test_every_path_contributing_names_exists() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    named = [token for token in re.findall(r"`([^`\s]+)`", text)
             if re.match(r"(kb|scrapers|schema|tests|bench|\.ci)/", token)
             and not re.search(r"[<*]|NNNN", token)]  # patterns such as scrapers/<source>.py
    assert "kb/store/works.py" in named and "kb/render/" in named
    for token in named:
        path, _, test = token.partition("::")  # tests/x.py::test_y
        path = re.split(r":(?=[A-Za-z_])", path)[0]  # kb/x.py:NAME
        assert (ROOT / path.rstrip("/")).exists(), token
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(encoding="utf-8"), token
