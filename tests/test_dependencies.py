"""setup.cfg declares exactly what kb imports: every third-party module kb/, scrapers/ and
tests/ import comes from a declared distribution, and every declared one is imported."""
from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared(*sections: str) -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = set()
    for section, key in sections:
        for line in cfg[section][key].split("\n"):
            if line.strip():
                names.add(_canonical(re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0]))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported(*folders: str) -> dict[str, str]:
    """Third-party top-level modules imported under ``folders`` → a file importing each."""
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in {"kb", "tests"}:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _distributions(modules: dict[str, str]) -> dict[str, str]:
    owners = packages_distributions()
    return {_canonical(owners[module][0]): where for module, where in modules.items()}


def test_kb_imports_only_declared_distributions_and_all_of_them() -> None:
    runtime = _declared(("options", "install_requires"))
    used = _distributions(_imported("kb", "scrapers"))
    assert {d: where for d, where in used.items() if d not in runtime} == {}
    assert runtime - set(used) == set()


def test_tests_import_only_declared_distributions() -> None:
    declared = _declared(("options", "install_requires"), ("options.extras_require", "test"))
    used = _distributions(_imported("tests"))
    assert {d: where for d, where in used.items() if d not in declared} == {}
