"""The ``faces`` model's pure code (``triton_models/faces/1/facelib.py``) and its analyzer.

Alignment maths, prewhitening and the quality parts are checked against hand-computed
tables; ``FaceAnalyzer`` runs the real YuNet + FaceNet models on real deepface photos.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from argus.inference.faces import load_facelib, local_analyzer, model_parameters
from argus.settings import get_settings

facelib: ModuleType = load_facelib()
TEMPLATE_112 = facelib.ARCFACE_TEMPLATE_112


# --- template and alignment ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("size", "scale", "point0", "point2"),
    [
        (112, 1.0, (38.2946, 51.6963), (56.0252, 71.7366)),  # the insightface template itself
        (160, 1.0, (54.7066, 73.8519), (80.036, 102.4809)),  # x 160/112
        (160, 0.5, (67.3533, 76.9260), (80.018, 91.2405)),  # halfway to the centre (80, 80)
        (224, 1.0, (76.5892, 103.3926), (112.0504, 143.4732)),
    ],
)
def test_face_template(size: int, scale: float, point0: tuple[float, float],
                       point2: tuple[float, float]) -> None:
    template = facelib.face_template(size, scale)
    assert template.shape == (5, 2) and template.dtype == np.float32
    np.testing.assert_allclose(template[0], point0, atol=1e-3)
    np.testing.assert_allclose(template[2], point2, atol=1e-3)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


@pytest.mark.parametrize(
    ("angle", "scale", "tx", "ty"),
    [(0, 1, 0, 0), (0, 2.5, 100, 40), (30, 0.7, -20, 300), (-90, 1.3, 500, 10),
     (175, 4.0, 12, 12)],
)
def test_alignment_matrix_recovers_a_similarity(angle: float, scale: float, tx: float,
                                                ty: float) -> None:
    """Landmarks that are the template moved by a known similarity map back exactly."""
    template = facelib.face_template(160, 0.9)
    forward = similarity(angle, scale, tx, ty)
    landmarks = template @ forward[:, :2].T + forward[:, 2]
    matrix = facelib.alignment_matrix(landmarks, template)
    back = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(back, template, atol=1e-2)
    # the inverse of the forward transform: scale 1/scale, rotation -angle
    assert math.hypot(matrix[0, 0], matrix[1, 0]) == pytest.approx(1 / scale, rel=1e-4)


def test_alignment_is_least_squares_for_noisy_points() -> None:
    """With noise, the fit is the least-squares similarity (Umeyama's closed form)."""
    rng = np.random.default_rng(5)
    template = facelib.face_template(160, 1.0).astype(np.float64)
    landmarks = template * 1.7 + [30.0, 60.0] + rng.normal(0, 2.0, template.shape)
    matrix = facelib.alignment_matrix(landmarks, template)
    # closed form: complex least squares z_dst = a * z_src + b
    zs = landmarks[:, 0] + 1j * landmarks[:, 1]
    zd = template[:, 0] + 1j * template[:, 1]
    zs_c, zd_c = zs - zs.mean(), zd - zd.mean()
    a = (np.conj(zs_c) @ zd_c) / (np.conj(zs_c) @ zs_c)
    expected = np.array([[a.real, -a.imag], [a.imag, a.real]])
    np.testing.assert_allclose(matrix[:, :2], expected, atol=2e-3)


def test_alignment_rejects_mismatched_points() -> None:
    with pytest.raises(ValueError, match="matching point sets"):
        facelib.alignment_matrix(np.zeros((5, 2)), np.zeros((4, 2)))


def test_align_face_puts_the_landmarks_on_the_template() -> None:
    """Draw dots at rotated/scaled landmark positions; after alignment they sit on the
    template."""
    template = facelib.face_template(160, 0.9)
    forward = similarity(20, 2.0, 150, 80)
    landmarks = template @ forward[:, :2].T + forward[:, 2]
    image = np.zeros((600, 600, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 6, (255, 255, 255), -1)
    crop = facelib.align_face(image, landmarks, 160, 0.9)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    for x, y in template:
        assert crop[round(y), round(x)].min() == 255


# --- FaceNet input ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 2.0], [-1.0, 1.0]),  # mean 1, std 1
        ([10.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]),  # std 0 → divide by 1/sqrt(4)
        ([1.0, 2.0, 3.0, 4.0], [-1.3416408, -0.4472136, 0.4472136, 1.3416408]),
        ([0.0, 0.0, 0.0, 0.1], [-0.05, -0.05, -0.05, 0.15]),  # std 0.0433 < 1/2 → 1/2
    ],
)
def test_prewhiten(values: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(facelib.prewhiten(np.array(values)), expected, atol=1e-6)


def test_facenet_input_is_rgb_prewhitened_nhwc() -> None:
    crop = np.zeros((160, 160, 3), np.uint8)
    crop[..., 0] = 200  # blue in BGR
    tensor = facelib.facenet_input(crop)
    assert tensor.shape == (1, 160, 160, 3) and tensor.dtype == np.float32
    assert tensor[0, 0, 0, 2] > 0 > tensor[0, 0, 0, 0]  # blue is the last channel in RGB
    assert float(tensor.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(tensor.std()) == pytest.approx(1.0, abs=1e-4)


# --- quality ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("px", "score"), [(0, 0.0), (24, 0.0), (52, 0.5), (80, 1.0), (300, 1.0)])
def test_size_score(px: float, score: float) -> None:
    assert facelib.size_score(px) == pytest.approx(score)


def rotate(points: np.ndarray, angle_deg: float) -> np.ndarray:
    return np.asarray(points @ similarity(angle_deg, 1.0, 0, 0)[:, :2].T)


FRONTAL = np.array([[40, 50], [80, 50], [60, 74.8], [44, 90], [76, 90]], dtype=np.float64)
"""Nose 62 % of the way from the eye line (y=50) to the mouth line (y=90): YuNet's frontal."""


def nose_moved(dx: float, dy: float) -> np.ndarray:
    moved = FRONTAL.copy()
    moved[2] += (dx, dy)
    return moved


@pytest.mark.parametrize(
    ("landmarks", "yaw", "pitch", "frontal"),
    [
        (FRONTAL, 0.0, 0.62, 1.0),
        (rotate(FRONTAL, 35) * 3 + 7, 0.0, 0.62, 1.0),  # rotation and scale do not matter
        (nose_moved(9, 0), 0.45, 0.62, 0.5),  # turned
        (nose_moved(-20, 0), -1.0, 0.62, 0.0),  # profile
        (nose_moved(0, -7), 0.0, 0.445, 0.5),  # looking up
    ],
)
def test_pose_and_frontal_score(landmarks: np.ndarray, yaw: float, pitch: float,
                                frontal: float) -> None:
    got_yaw, got_pitch = facelib.pose_ratios(landmarks)
    assert got_yaw == pytest.approx(yaw, abs=1e-6)
    assert got_pitch == pytest.approx(pitch, abs=1e-6)
    assert facelib.frontal_score(landmarks) == pytest.approx(frontal, abs=1e-3)


@pytest.mark.parametrize(
    ("variance", "score"),
    [(0.0, 0.0), (30.0, 0.0), (30.0 * math.sqrt(10), 0.5), (300.0, 1.0), (5000.0, 1.0)],
)
def test_sharpness_score(variance: float, score: float) -> None:
    assert facelib.sharpness_score(variance) == pytest.approx(score, abs=1e-9)


def test_laplacian_variance_drops_with_blur() -> None:
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    assert facelib.laplacian_variance(sharp) > 100 * facelib.laplacian_variance(blurred)
    assert facelib.laplacian_variance(np.full((50, 50, 3), 7, np.uint8)) == 0.0


@pytest.mark.parametrize(
    ("parts", "quality"),
    [((1, 1, 1), 1.0), ((1, 1, 0), 0.0), ((0.125, 1, 1), 0.5), ((0.5, 0.5, 0.5), 0.5),
     ((1.5, 1, 1), 1.0)],
)
def test_quality_is_the_geometric_mean(parts: tuple[float, ...], quality: float) -> None:
    assert facelib.quality_score(parts) == pytest.approx(quality)


# --- detection helpers -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("width", "height", "max_side", "min_side", "scale"),
    [(1280, 960, 640, 320, 0.5), (640, 480, 640, 320, 1.0), (100, 160, 640, 320, 2.0),
     (100, 160, 640, 0, 1.0), (768, 432, 960, 320, 1.0)],
)
def test_detection_scale(width: int, height: int, max_side: int, min_side: int,
                         scale: float) -> None:
    assert facelib.detection_scale(width, height, max_side, min_side) == pytest.approx(scale)


@pytest.mark.parametrize(
    ("box", "bounds"),
    [(None, (0, 0, 200, 100)), ((0.1, 0.2, 0.5, 0.9), (20, 20, 100, 90)),
     ((-1, -1, 2, 2), (0, 0, 200, 100)), ((0.5, 0.5, 0.5, 0.9), (0, 0, 200, 100)),
     ((0, 0, 0, 0), (0, 0, 200, 100))],
)
def test_roi_pixels(box: tuple[float, ...] | None, bounds: tuple[int, ...]) -> None:
    assert facelib.roi_pixels(box, 200, 100) == bounds


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xda garbage", b"not an image"])
def test_decode_jpeg_rejects_bad_bytes(data: bytes) -> None:
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        facelib.decode_jpeg(data)


# --- the real models on real photos ----------------------------------------------------------

def deepface() -> Path:
    return get_settings().shared / "data" / "faces" / "deepface"


@pytest.fixture(scope="module")
def analyzer() -> object:
    return local_analyzer(get_settings().shared / "models")


def test_local_analyzer_uses_the_served_parameters() -> None:
    params = model_parameters()
    assert params["yunet_file"] == "yunet_n_dynamic.onnx"
    assert params["facenet_file"] == "facenet_20180408.onnx"
    assert float(params["align_scale"]) == 0.9 and int(params["max_faces"]) == 16


@pytest.mark.parametrize("photo", ["img1.jpg", "couple.jpg", "selfie-many-people.jpg"])
def test_yunet_onnxruntime_decodes_like_opencv(photo: str) -> None:
    """Our onnxruntime YuNet gives the same faces as ``cv2.FaceDetectorYN``."""
    models = get_settings().shared / "models"
    image = cv2.imread(str(deepface() / photo))
    assert image is not None
    scale = facelib.detection_scale(image.shape[1], image.shape[0], 640, 320)
    image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    ours = facelib.YuNet(str(models / "yunet_n_dynamic.onnx"), 0.7, 0.3).detect(image)
    opencv = cv2.FaceDetectorYN.create(str(models / "yunet_n_640_640.onnx"), "",
                                       (image.shape[1], image.shape[0]), 0.7, 0.3, 5000)
    _, reference = opencv.detect(image)
    reference = reference[np.argsort(-reference[:, 14])]
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=0.01)


@pytest.mark.parametrize(("photo", "faces"), [("img1.jpg", 1), ("couple.jpg", 2),
                                              ("img20.jpg", 1)])
def test_analyzer_counts_faces(analyzer: object, photo: str, faces: int) -> None:
    found = analyzer.analyze(cv2.imread(str(deepface() / photo)))  # type: ignore[attr-defined]
    assert len(found) == faces
    for face in found:
        assert face.embedding.shape == (512,)
        assert float(np.linalg.norm(face.embedding)) == pytest.approx(1.0, abs=1e-4)
        assert 0.5 < face.quality <= 1.0 and face.score > 0.7
        assert np.all((face.box >= 0) & (face.box <= 1)) and face.box[2] > face.box[0]


def test_same_identity_is_closer_than_different(analyzer: object) -> None:
    """img1/img2 are one person (G00), img20 another (G10)."""
    emb = {p: analyzer.analyze(cv2.imread(str(deepface() / p)))[0].embedding  # type: ignore
           for p in ("img1.jpg", "img2.jpg", "img20.jpg", "img21.jpg")}
    same_a = float(emb["img1.jpg"] @ emb["img2.jpg"])
    same_b = float(emb["img20.jpg"] @ emb["img21.jpg"])
    different = float(emb["img1.jpg"] @ emb["img20.jpg"])
    assert same_a > different + 0.2 and same_b > different + 0.2


def test_blurred_and_small_faces_score_lower(analyzer: object) -> None:
    image = cv2.imread(str(deepface() / "img1.jpg"))
    sharp = analyzer.analyze(image)[0]  # type: ignore[attr-defined]
    blurred = analyzer.analyze(cv2.GaussianBlur(image, (0, 0), 8))  # type: ignore
    small = analyzer.analyze(cv2.resize(image, None, fx=0.08, fy=0.08))  # type: ignore
    assert sharp.parts[2] == pytest.approx(1.0)
    assert blurred and blurred[0].parts[2] < 0.5 and blurred[0].quality < sharp.quality
    assert small and small[0].parts[0] < 0.3 and small[0].quality < sharp.quality
