"""``triton_models/detector/1/model.py`` outside Triton: how one ``execute`` call answers a
dynamic batch (detection request by request, then the person crops of every request through
re-id together, errors confined to their own request). ``triton_python_backend_utils``
exists only inside the stub, so a stand-in is installed first; the networks are stand-ins
too (the real ones run in the Triton integration tests)."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from argus.settings import REPO_ROOT

MODEL_PY = REPO_ROOT / "triton_models" / "detector" / "1" / "model.py"


class _Error:
    def __init__(self, message: str) -> None:
        self.message = message


class _Response:
    def __init__(self, output_tensors: Any = None, error: _Error | None = None) -> None:
        self.error = error
        self.outputs = {t.name: t.array for t in output_tensors or ()}


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Request:
    def __init__(self, jpegs: list[bytes], outputs: tuple[str, ...]) -> None:
        self.image = _Tensor("IMAGE", np.array([[j] for j in jpegs], dtype=np.object_))
        self.outputs = outputs

    def requested_output_names(self) -> tuple[str, ...]:
        return self.outputs


@pytest.fixture(scope="module")
def model_module() -> Iterator[Any]:
    stub = types.ModuleType("triton_python_backend_utils")
    stub.TritonError = _Error  # type: ignore[attr-defined]
    stub.InferenceResponse = _Response  # type: ignore[attr-defined]
    stub.Tensor = _Tensor  # type: ignore[attr-defined]
    stub.get_input_tensor_by_name = lambda request, name: request.image  # type: ignore[attr-defined]
    saved_modules = {n: sys.modules.get(n) for n in
                     (stub.__name__, "yolox", "appearance", "argus_backend")}
    saved_path, writes = list(sys.path), sys.dont_write_bytecode
    sys.modules[stub.__name__] = stub
    spec = importlib.util.spec_from_file_location("detector_model", MODEL_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:  # model.py puts its folders first on sys.path and turns bytecode off: undone below
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path[:], sys.dont_write_bytecode = saved_path, writes
        for name, saved in saved_modules.items():
            if saved is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved


class _Runner:
    """Every image: a person (0.9), a car (0.8) and a person below the re-id floor (0.3)."""

    def detect_image(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes = np.array([[0.1, 0.1, 0.3, 0.9], [0.5, 0.5, 0.9, 0.8], [0.6, 0.1, 0.7, 0.4]],
                         dtype=np.float32)
        return (boxes, np.array([0.9, 0.8, 0.3], dtype=np.float32),
                np.array([0, 2, 0], dtype=np.int32))


class _Reid:
    """Embeds a crop as (image's grey level, 1, 0, 0); fails on images of grey level 13."""

    dim = 4

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_many(self, items: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        self.calls.append(len(items))
        out = []
        for image, boxes in items:
            level = float(image[0, 0, 0])
            if round(level) == 13:
                raise RuntimeError("re-id broke")
            vector = np.array([level, 1.0, 0.0, 0.0], dtype=np.float32)
            out.append(np.tile(vector / np.linalg.norm(vector), (len(boxes), 1)))
        return out


def encoded(level: int) -> bytes:
    ok, buffer = cv2.imencode(".png", np.full((40, 60, 3), level, dtype=np.uint8))
    assert ok
    return buffer.tobytes()


def detector(module: Any) -> Any:
    model = module.TritonPythonModel.__new__(module.TritonPythonModel)
    model.runner, model.reid, model.reid_name = _Runner(), _Reid(), "osnet_x0_25_msmt17"
    model.reid_score, model.reid_max = 0.5, 32
    return model


REID = ("BOXES", "SCORES", "CLASSES", "IMAGE_SIZE", "EMBEDDINGS", "REID_MODEL")


def test_one_reid_pass_for_the_whole_batch(model_module: Any) -> None:
    model = detector(model_module)
    requests = [_Request([encoded(100)], REID), _Request([b"not a jpeg"], REID),
                _Request([encoded(50), encoded(200)], REID), _Request([encoded(70)], REID[:4])]
    responses = model.execute(requests)
    assert model.reid.calls == [3]  # three images' person crops, one call
    assert responses[1].error.message.startswith("corrupt_jpeg:")
    first, both, plain = responses[0].outputs, responses[2].outputs, responses[3].outputs
    assert first["CLASSES"].tolist() == [[0, 2, 0]]
    assert first["IMAGE_SIZE"].tolist() == [[60, 40]]
    assert first["EMBEDDINGS"].shape == (1, 3, 4) and both["EMBEDDINGS"].shape == (2, 3, 4)
    assert first["EMBEDDINGS"][0].tolist() == [[127, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert both["EMBEDDINGS"][:, 0].tolist() == [[127, 3, 0, 0], [127, 1, 0, 0]]
    assert not both["EMBEDDINGS"][:, 1:].any()
    assert both["REID_MODEL"].tolist() == [[b"osnet_x0_25_msmt17"]] * 2
    assert plain["EMBEDDINGS"].shape == (1, 3, 0) and plain["REID_MODEL"].tolist() == [[b""]]


def test_a_reid_failure_fails_only_its_request(model_module: Any) -> None:
    model = detector(model_module)
    responses = model.execute([_Request([encoded(100)], REID), _Request([encoded(13)], REID),
                               _Request([encoded(13)], REID[:4])])
    assert model.reid.calls == [2, 1, 1]  # together, then request by request
    assert responses[0].error is None
    assert responses[0].outputs["EMBEDDINGS"][0, 0].tolist() == [127, 1, 0, 0]
    assert responses[1].error.message == "detector_error: RuntimeError: re-id broke"
    assert responses[2].error is None  # no EMBEDDINGS asked: no re-id, no error
