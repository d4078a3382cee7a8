"""What setup.py declares, read without running it (the packaging tests share this)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def console_scripts() -> set[str]:
    """Names of setup.py's console_scripts entry points."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return {ast.literal_eval(v).split('=')[0].strip() for v in value.elts}
    raise AssertionError('setup.py has no console_scripts')
