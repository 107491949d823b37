"""Where the project lives on disk: caches and runtime state are kept under it, git-ignored."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("NONSITE_HOME", Path(__file__).resolve().parents[1]))
VAR = PROJECT_ROOT / "var"
CACHE = PROJECT_ROOT / ".cache"
