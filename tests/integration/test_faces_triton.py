"""The Triton ``faces`` model on the session's real Triton server (gRPC).

Real deepface photos go in as JPEG bytes: face counts, output layout, identity separation,
agreement with the in-process ``facelib`` reference, the optional person ``BOX`` and
``corrupt_jpeg`` errors that fail only their own request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from argus.inference.detector import Rejected
from argus.inference.faces import (
    OUTPUTS,
    DetectedFace,
    TritonFaces,
    load_facelib,
    local_analyzer,
    parse_faces,
)
from argus.settings import Settings

pytestmark = pytest.mark.integration

MODEL = "faces"


def deepface(settings: Settings) -> Path:
    return settings.shared / "data" / "faces" / "deepface"


@pytest.fixture(scope="module")
def photos(stack: Settings) -> dict[str, bytes]:
    names = ("img1.jpg", "img2.jpg", "img20.jpg", "img21.jpg", "couple.jpg",
             "selfie-many-people.jpg")
    return {name: (deepface(stack) / name).read_bytes() for name in names}


@pytest.fixture(scope="module")
def client(stack: Settings) -> Iterator[grpcclient.InferenceServerClient]:
    triton = grpcclient.InferenceServerClient(stack.triton_grpc_url)
    deadline = time.monotonic() + 60
    while True:
        try:
            if triton.is_model_ready(MODEL):
                break
        except InferenceServerException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"Triton at {stack.triton_grpc_url} has no READY model {MODEL!r}")
        time.sleep(0.5)
    yield triton
    triton.close()


def infer(client: grpcclient.InferenceServerClient, jpegs: list[bytes],
          boxes: list[list[float]] | None = None) -> dict[str, np.ndarray]:
    batch = np.array(jpegs, dtype=np.object_).reshape(len(jpegs), 1)
    image = grpcclient.InferInput("IMAGE", list(batch.shape), "BYTES")
    image.set_data_from_numpy(batch)
    inputs = [image]
    if boxes is not None:
        box = grpcclient.InferInput("BOX", [len(boxes), 4], "FP32")
        box.set_data_from_numpy(np.asarray(boxes, dtype=np.float32))
        inputs.append(box)
    result = client.infer(MODEL, inputs,
                          outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS])
    return {name: result.as_numpy(name) for name in OUTPUTS}


def test_batch_layout_and_face_counts(client: grpcclient.InferenceServerClient,
                                      photos: dict[str, bytes]) -> None:
    names = ["img1.jpg", "couple.jpg", "selfie-many-people.jpg"]
    out = infer(client, [photos[n] for n in names])
    counts = out["COUNT"].reshape(-1).tolist()
    assert counts[:2] == [1, 2]
    assert 4 <= counts[2] <= 8  # a group selfie (6 faces seen by YuNet at 640)
    rows = out["BOXES"].shape[1]
    assert rows == max(counts)
    assert out["LANDMARKS"].shape == (3, rows, 10) and out["EMBEDDINGS"].shape == (3, rows, 512)
    assert out["QUALITY_PARTS"].shape == (3, rows, 3)
    assert out["IMAGE_SIZE"].tolist() == [[946, 1280], [1280, 891], [600, 604]]
    for i, count in enumerate(counts):
        norms = np.linalg.norm(out["EMBEDDINGS"][i], axis=1)
        np.testing.assert_allclose(norms[:count], 1.0, atol=1e-4)
        assert np.all(out["EMBEDDINGS"][i, count:] == 0) and np.all(out["SCORES"][i, count:] == 0)
        assert np.all(out["SCORES"][i, :count] >= 0.7)
        areas = np.prod(out["BOXES"][i, :count, 2:] - out["BOXES"][i, :count, :2], axis=1)
        assert np.all(np.diff(areas) <= 1e-6)  # largest first
    couple = parse_faces(out, 1)
    assert couple[0].box[0] < 0.5 < couple[1].box[0]  # one face on each side
    assert all(f.quality > 0.6 for f in couple)


def test_same_identity_is_more_similar(client: grpcclient.InferenceServerClient,
                                       photos: dict[str, bytes]) -> None:
    out = infer(client, [photos[n] for n in ("img1.jpg", "img2.jpg", "img20.jpg", "img21.jpg")])
    emb = out["EMBEDDINGS"][:, 0]
    same = [float(emb[0] @ emb[1]), float(emb[2] @ emb[3])]
    different = [float(emb[0] @ emb[2]), float(emb[0] @ emb[3]), float(emb[1] @ emb[2])]
    assert min(same) > max(different) + 0.2, (same, different)


def test_matches_the_in_process_reference(client: grpcclient.InferenceServerClient,
                                          photos: dict[str, bytes], stack: Settings) -> None:
    """Triton serves the same facelib.py as the application (OpenCV 4.10 vs 4.14)."""
    facelib = load_facelib()
    analyzer = local_analyzer(stack.models_dir)
    for name in ("img1.jpg", "couple.jpg"):
        served = parse_faces(infer(client, [photos[name]]))
        local = analyzer.analyze(facelib.decode_jpeg(photos[name]))
        assert len(served) == len(local)
        for a, b in zip(served, local, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=0.01)
            assert float(a.embedding @ b.embedding) > 0.98


def test_box_restricts_the_search(client: grpcclient.InferenceServerClient,
                                  photos: dict[str, bytes]) -> None:
    out = infer(client, [photos["couple.jpg"]] * 3,
                [[0.5, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]])
    assert out["COUNT"].reshape(-1).tolist() == [1, 1, 2]  # right, left, whole (degenerate)
    assert out["BOXES"][0, 0, 0] > 0.5 and out["BOXES"][1, 0, 2] < 0.5
    full = parse_faces(out, 2)
    right = parse_faces(out, 0)[0]
    # coordinates stay relative to the whole image: the same face as without the box
    np.testing.assert_allclose(right.box, full[1].box, atol=0.02)


def test_no_face_gives_count_zero(client: grpcclient.InferenceServerClient) -> None:
    ok, grey = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
    assert ok
    out = infer(client, [bytes(grey.tobytes())])
    assert out["COUNT"].tolist() == [[0]] and out["BOXES"].shape == (1, 1, 4)


@pytest.mark.parametrize("corruption", ["truncated", "random", "empty"])
def test_corrupt_jpeg_is_an_error(client: grpcclient.InferenceServerClient,
                                  photos: dict[str, bytes], corruption: str) -> None:
    bad = {"truncated": photos["img1.jpg"][:400],
           "random": np.random.default_rng(7).bytes(5000), "empty": b""}[corruption]
    with pytest.raises(InferenceServerException, match="corrupt_jpeg"):
        infer(client, [bad])


def test_async_client_and_neighbours_of_a_corrupt_request(photos: dict[str, bytes],
                                                          stack: Settings) -> None:
    """Concurrent requests (with and without BOX, one corrupt) through the stage's client:
    only the corrupt one fails, as ``Rejected("corrupt_jpeg")``."""

    async def run() -> list[object]:
        faces = TritonFaces(stack.triton_grpc_url)
        jobs = [faces.infer(photos["img1.jpg"]),
                faces.infer(photos["couple.jpg"], (0.5, 0.0, 1.0, 1.0)),
                faces.infer(b"\x00" * 100),
                faces.infer(photos["couple.jpg"])]
        try:
            return list(await asyncio.gather(*jobs, return_exceptions=True))
        finally:
            await faces.close()

    results = asyncio.run(run())
    assert isinstance(results[2], Rejected) and results[2].reason == "corrupt_jpeg"
    counts = []
    for index in (0, 1, 3):
        result = results[index]
        assert isinstance(result, tuple)
        found: list[DetectedFace] = result[0]
        assert all(isinstance(f, DetectedFace) for f in found) and result[2] > 0
        counts.append(len(found))
    assert counts == [1, 1, 2]
    assert results[3][1] == (1280, 891)  # type: ignore[index]
