"""The map's rules, enforced by tools: import contracts (import-linter, configured in
pyproject.toml), the linter (ruff), and the one home for openai-whisper's internals."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "npu_whisper_app"
BIN = Path(sys.executable).parent

#: openai-whisper modules that are not its public calls (``whisper.load_model``,
#: ``whisper.decode``, ``whisper.DecodingOptions``, ``whisper.audio``, ``whisper.tokenizer``,
#: ``whisper.utils``, ``whisper.normalizers``, and ``whisper.model``'s ``Whisper`` /
#: ``ModelDimensions`` that build a model from a checkpoint, as ``load_model`` does);
#: only model/whisper_loop.py may use them
INTERNALS = ("whisper.decoding", "whisper.transcribe", "whisper.timing", "whisper.triton_ops")
HOOKS_MODULE = PACKAGE / "model" / "whisper_loop.py"


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept() -> None:
    r = _run(str(BIN / "lint-imports"), "--no-cache")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_ruff_is_clean() -> None:
    r = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def _whisper_internals_used(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(INTERNALS)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(INTERNALS):
            found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr == "_getframe":
            found.append("sys._getframe")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and str(arg.value).startswith(INTERNALS):
                found.append(str(arg.value))
    return found


def test_only_the_hooks_module_touches_openai_whisper_internals() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path == HOOKS_MODULE:
            continue
        used = _whisper_internals_used(ast.parse(path.read_text(encoding="utf-8")))
        if used:
            offenders[str(path.relative_to(ROOT))] = used
    assert not offenders, f"openai-whisper internals outside {HOOKS_MODULE.name}: {offenders}"
    # and the check itself sees what it looks for
    assert _whisper_internals_used(ast.parse("import whisper.decoding as d\nimport sys\nsys._getframe(1)")) == ["whisper.decoding", "sys._getframe"]
