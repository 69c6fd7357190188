"""The docs' hook modules (docs/hooks), importable from tests as mkdocs imports them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "docs" / "hooks"


def hook_module(name: str) -> ModuleType:
    """mkdocs puts the hook's folder on sys.path while it loads it; so do we."""
    if str(HOOKS) not in sys.path:
        sys.path.insert(0, str(HOOKS))
    return importlib.import_module(name)
