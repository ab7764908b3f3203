"""The Triton ``plates`` model on the session's real Triton server (gRPC), on labelled US
photos: exact plate strings through the site format, plate boxes on the labelled plate,
agreement with the in-process ``platelib`` reader, batching, ``corrupt_jpeg`` errors that
fail only their own request, and the latency per call.

The vehicle boxes are YOLOX-nano's on these photos (normalised x1, y1, x2, y2).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from argus.inference.plates import TritonPlates
from argus.inference.triton import Rejected
from argus.plates.reader import local_reader, plate_of
from argus.plates.text import PlateFormat
from argus.settings import Settings

pytestmark = pytest.mark.integration

US = PlateFormat(pattern=r"[A-Z0-9]{5,8}", fold={"O": "0"}, drop_below=0.4)
# file, label, plate box (x, y, w, h pixels), vehicle box (normalised)
PHOTOS = [
    ("0b86cecf-67d1-4fc0-87c9-b36b0ee228bb.jpg", "YG9X2G", (623, 241, 66, 33),
     (0.416, 0.004, 1.0, 0.507)),
    ("car9-2.jpg", "4639520", (587, 306, 75, 38), (0.332, 0.316, 0.639, 0.681)),
    ("wts-lg-000049.jpg", "WG4L2M", None, (0.366, 0.142, 0.744, 0.723)),
    ("us1.jpg", "4PCI264", (501, 335, 159, 79), (0.158, 0.079, 0.839, 0.992)),
]


def folder(settings: Settings) -> Path:
    return settings.shared / "data" / "plates" / "openalpr_us"


@pytest.fixture(scope="module")
def jpegs(stack: Settings) -> dict[str, bytes]:
    return {name: (folder(stack) / name).read_bytes() for name, *_ in PHOTOS}


async def ready_plates(settings: Settings) -> TritonPlates:
    plates = TritonPlates(settings.triton_grpc_url)
    deadline = time.monotonic() + 60
    while not await plates.ready():
        if time.monotonic() > deadline:
            pytest.fail(f"Triton at {settings.triton_grpc_url} has no READY model 'plates'")
        await asyncio.sleep(0.5)
    return plates


def test_reads_labelled_plates_exactly(stack: Settings, jpegs: dict[str, bytes]) -> None:
    async def go() -> list[list[dict[str, object]]]:
        plates = await ready_plates(stack)
        try:
            return [(await plates.infer(jpegs[name], vehicle))[0]
                    for name, _, _, vehicle in PHOTOS]
        finally:
            await plates.close()

    all_reads = asyncio.run(go())
    for (name, label, plate_box, _), reads in zip(PHOTOS, all_reads, strict=True):
        assert reads, name
        picked = plate_of(reads, US)
        assert picked is not None, (name, reads)
        item, normal = picked
        assert normal.text == label, (name, reads)
        confidences = item["confidences"]
        assert isinstance(confidences, list) and len(confidences) >= len(label)
        assert all(0.0 < c <= 1.0 for c in confidences)
        if plate_box is not None:  # the read's box centre lies on the labelled plate
            image = cv2.imdecode(np.frombuffer(jpegs[name], np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            height, width = image.shape[:2]
            x1, y1, x2, y2 = item["box"]
            cx, cy = (x1 + x2) / 2 * width, (y1 + y2) / 2 * height
            x, y, w, h = plate_box
            assert x <= cx <= x + w and y <= cy <= y + h, (name, item["box"], plate_box)


def test_agrees_with_the_in_process_reader(stack: Settings, jpegs: dict[str, bytes]) -> None:
    name, _, _, vehicle = PHOTOS[0]

    async def go() -> list[dict[str, object]]:
        plates = await ready_plates(stack)
        try:
            return (await plates.infer(jpegs[name], vehicle))[0]
        finally:
            await plates.close()

    served = asyncio.run(go())
    reader = local_reader(stack.models_dir)
    image = cv2.imdecode(np.frombuffer(jpegs[name], np.uint8), cv2.IMREAD_COLOR)
    local = [r.as_dict() for r in reader.read_image(image, vehicle)]
    # Triton's env (numpy 1.26, OpenCV 4.10) and the application's (numpy 2) agree on text
    assert [r["text"] for r in served] == [r["text"] for r in local]
    for a, b in zip(served, local, strict=True):
        assert a["box"] == pytest.approx(b["box"], abs=0.01)
        assert a["confidences"] == pytest.approx(b["confidences"], abs=0.05)


def test_batch_outputs_and_corrupt_jpeg(stack: Settings, jpegs: dict[str, bytes]) -> None:
    names = [name for name, *_ in PHOTOS[:2]]
    client = grpcclient.InferenceServerClient(stack.triton_grpc_url)
    try:
        image = grpcclient.InferInput("IMAGE", [2, 1], "BYTES")
        image.set_data_from_numpy(np.array([[jpegs[n]] for n in names], dtype=np.object_))
        box = grpcclient.InferInput("BOX", [2, 4], "FP32")
        box.set_data_from_numpy(np.array([v for *_, v in PHOTOS[:2]], dtype=np.float32))
        result = client.infer("plates", [image, box])
        text_out, score_out = result.as_numpy("TEXT"), result.as_numpy("SCORE")
        boxes = result.as_numpy("PLATE_BOX")
        assert text_out is not None and score_out is not None and boxes is not None
        texts = [t.decode() for t in text_out.reshape(-1)]
        scores = score_out.reshape(-1)
        assert texts == ["YG9X2G", "4639520"]
        assert scores.shape == (2,) and (scores > 0.5).all()
        assert boxes.shape == (2, 4) and (boxes[:, 2] > boxes[:, 0]).all()
    finally:
        client.close()

    async def bad() -> None:
        plates = await ready_plates(stack)
        try:
            good, _ = await plates.infer(jpegs[names[0]], PHOTOS[0][3])
            assert good
            with pytest.raises(Rejected, match="cannot decode JPEG") as failure:
                await plates.infer(b"\xff\xd8 not really a jpeg", None)
            assert failure.value.reason == "corrupt_jpeg"
        finally:
            await plates.close()

    asyncio.run(bad())


def test_latency_per_vehicle(stack: Settings, jpegs: dict[str, bytes]) -> None:
    name, _, _, vehicle = PHOTOS[1]

    async def go() -> list[float]:
        plates = await ready_plates(stack)
        try:
            return [(await plates.infer(jpegs[name], vehicle))[1] for _ in range(5)]
        finally:
            await plates.close()

    latencies = asyncio.run(go())
    print(f"plates on Triton: median {statistics.median(latencies):.1f} ms per vehicle")
    assert statistics.median(latencies) < 2000  # one vehicle, one core, a shared machine
