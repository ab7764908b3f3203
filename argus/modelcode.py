"""Load the Triton models' own Python code into the application environment.

The pre/post-processing of a Triton python-backend model lives next to its ``model.py``
(for example ``triton_models/detector/1/yolox.py``) so that Triton serves exactly that code.
Benchmarks, tests and the plain-loop reference import the same file from here instead of
keeping a copy.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from argus.settings import REPO_ROOT

YOLOX_PATH = REPO_ROOT / "triton_models" / "detector" / "1" / "yolox.py"
"""The detector's pre/post-processing (pure numpy + OpenCV)."""


def triton_parameters(model: str) -> dict[str, str]:
    """The ``parameters`` of ``triton_models/<model>/config.pbtxt`` (key → string value), so
    that code running a model outside Triton uses the settings Triton serves it with."""
    text = (REPO_ROOT / "triton_models" / model / "config.pbtxt").read_text(encoding="utf-8")
    pattern = r'key:\s*"([^"]+)"(?:\s*#[^\n]*)?\s*value:\s*\{\s*string_value:\s*"([^"]*)"'
    return dict(re.findall(pattern, text))


def load_module_from_path(name: str, path: Path) -> ModuleType:
    """Import the Python file ``path`` as module ``name`` (registered in ``sys.modules``)."""
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "") == path:
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as module {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@lru_cache(maxsize=1)
def load_yolox_module() -> ModuleType:
    """The detector's ``yolox.py`` (letterbox, decode, nms, postprocess, DetectorRunner, ...;
    it loads its sibling ``decoders.py`` by path itself)."""
    return load_module_from_path("argus_triton_detector_yolox", YOLOX_PATH)
