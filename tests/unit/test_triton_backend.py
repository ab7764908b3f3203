"""``triton_models/argus_backend.py``, the part every python-backend model shares, outside
Triton: ``triton_python_backend_utils`` exists only inside the stub, so a stand-in with the
two classes the module uses is installed first. (The real stub runs it in the Triton
integration tests.)"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from argus.settings import REPO_ROOT


class _Error:
    def __init__(self, message: str) -> None:
        self.message = message


class _Response:
    def __init__(self, output_tensors: Any = None, error: _Error | None = None) -> None:
        self.output_tensors, self.error = output_tensors, error


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    stub = types.ModuleType("triton_python_backend_utils")
    stub.TritonError = _Error  # type: ignore[attr-defined]
    stub.InferenceResponse = _Response  # type: ignore[attr-defined]
    saved = sys.modules.get(stub.__name__)
    sys.modules[stub.__name__] = stub
    spec = importlib.util.spec_from_file_location(
        "argus_backend", REPO_ROOT / "triton_models" / "argus_backend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:  # no __pycache__ in the model repository: Triton would take it for a model
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes
    yield module
    if saved is None:
        del sys.modules[stub.__name__]
    else:
        sys.modules[stub.__name__] = saved


def args(**parameters: str) -> dict[str, str]:
    config = {"parameters": {k: {"string_value": v} for k, v in parameters.items()}}
    return {"model_config": json.dumps(config)}


def test_respond_answers_every_request_and_fails_only_the_broken_ones(backend: Any) -> None:
    def infer(request: str) -> _Response:
        if request == "bad-jpeg":
            raise backend.corrupt_jpeg(ValueError("not a JPEG"), 1, 3)
        if request == "no-model":
            raise backend.RequestError("no_model", "camera cam-9 has none")
        if request == "bug":
            raise KeyError("boxes")
        return _Response(output_tensors=[request])

    responses = backend.respond("pose", ["ok", "bad-jpeg", "no-model", "bug", "ok2"], infer)
    assert [r.output_tensors for r in responses] == [["ok"], None, None, None, ["ok2"]]
    assert [r.error and r.error.message for r in responses] == [
        None,
        "corrupt_jpeg: not a JPEG (batch item 1 of 3)",
        "no_model: camera cam-9 has none",
        "pose_error: KeyError: 'boxes'",
        None,
    ]


def test_error_response_is_the_one_respond_gives(backend: Any) -> None:
    """Models that answer a dynamic batch in phases (the detector) build their errors with
    error_response."""
    known = backend.error_response("detector", backend.RequestError("corrupt_jpeg", "x"))
    other = backend.error_response("detector", ValueError("bad"))
    assert (known.error.message, other.error.message) == (
        "corrupt_jpeg: x", "detector_error: ValueError: bad")


@pytest.mark.parametrize(("items", "expected"), [
    (1, "corrupt_jpeg: truncated"),
    (4, "corrupt_jpeg: truncated (batch item 2 of 4)"),
])
def test_corrupt_jpeg_names_the_batch_item(backend: Any, items: int, expected: str) -> None:
    error = backend.corrupt_jpeg(ValueError("truncated"), 2, items)
    assert (str(error), error.kind) == (expected, "corrupt_jpeg")


def test_parameters(backend: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "net.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("ARGUS_MODEL_DIR", str(tmp_path))
    params = backend.Parameters("detector", args(model_file="net.onnx", tiles="", gone="x.onnx"))
    assert params.get("model_file") == "net.onnx"
    assert params.get("tiles", "1x1") == "1x1"  # empty string: unset
    assert params.get("decoder", "yolox") == "yolox"
    assert params.model_file("model_file") == str(tmp_path / "net.onnx")
    with pytest.raises(ValueError, match=r"detector: config\.pbtxt lacks the parameter .decoder."):
        params.get("decoder")
    with pytest.raises(FileNotFoundError, match=r"detector: model file .*x.onnx is missing "
                                                r"\(ARGUS_MODEL_DIR=.*\): run `argus models"):
        params.model_file("gone")
