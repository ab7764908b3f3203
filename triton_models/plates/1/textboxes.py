"""Text boxes for the plate reader: DB post-processing of PP-OCR's text probability map,
joining a line's pieces, local contrast equalisation, the perspective warp of a box (and its
widened variants), and the vehicle crop with its mapping back to the whole image.

Pure numpy + OpenCV, no Triton imports; loaded by ``platelib.py`` next to it (by path, so
the same file serves Triton and the application).

>>> order_quad([[10, 5], [0, 5], [0, 0], [10, 0]]).tolist()
[[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]
Quad = npt.NDArray[np.float32]
"""Four corners (4 x 2, pixels): top-left, top-right, bottom-right, bottom-left."""


def order_quad(points: npt.ArrayLike) -> Quad:
    """Four points ordered top-left, top-right, bottom-right, bottom-left.

    >>> order_quad([[10, 5], [0, 5], [0, 0], [10, 0]]).tolist()
    [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]]
    """
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def text_boxes(prob: npt.ArrayLike, thresh: float = 0.3, box_thresh: float = 0.5,
               unclip_ratio: float = 1.6, min_side: float = 3.0,
               ) -> list[tuple[Quad, float]]:
    """DB post-processing: text regions of a probability map as (quad, score), best first.

    The map is binarised at ``thresh`` (then dilated by 2x2); each contour's rotated rectangle
    is scored by the mean probability inside it and kept when the score reaches
    ``box_thresh``; it then grows on every side by area x ``unclip_ratio`` / perimeter (the DB
    paper's unclip for a rectangle). Coordinates are those of the map.
    """
    probability = np.asarray(prob, dtype=np.float32)
    mask = cv2.dilate((probability > thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[Quad, float]] = []
    for contour in contours:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < min_side:
            continue
        quad = cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float32)
        score = _mean_inside(probability, quad)
        if score < box_thresh:
            continue
        distance = w * h * unclip_ratio / (2.0 * (w + h))
        grown = cv2.boxPoints(((cx, cy), (w + 2 * distance, h + 2 * distance), angle))
        found.append((order_quad(grown), round(score, 4)))
    found.sort(key=lambda item: -item[1])
    return found


def _mean_inside(probability: FloatArray, quad: Quad) -> float:
    height, width = probability.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x0, y0], dtype=np.float32)).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], (1,))
    return float(cv2.mean(probability[y0:y1 + 1, x0:x1 + 1], mask)[0])


def merge_lines(boxes: Sequence[tuple[Quad, float]], gap: float = 1.2,
                ) -> list[tuple[Quad, float]]:
    """Join text boxes that continue one line (a plate's groups of characters found apart):
    vertical overlap of at least 60 % of the lower box, heights within a factor 1.5 and a
    horizontal gap of at most ``gap`` x the taller height. The joined box is the upright
    rectangle around both, scored with the lower score; order: best score first.

    >>> a = np.array([[0, 0], [30, 0], [30, 10], [0, 10]], np.float32)
    >>> b = a + np.array([38, 1], np.float32)
    >>> [(q.tolist()[0], q.tolist()[2], s) for q, s in merge_lines([(a, 0.9), (b, 0.8)])]
    [([0.0, 0.0], [68.0, 11.0], 0.8)]
    """
    items = [(q, s) for q, s in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                joined = _join(items[i], items[j], gap)
                if joined is not None:
                    items[i] = joined
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    items.sort(key=lambda item: -item[1])
    return items


def _join(a: tuple[Quad, float], b: tuple[Quad, float], gap: float,
          ) -> tuple[Quad, float] | None:
    ax0, ay0 = a[0].min(axis=0)
    ax1, ay1 = a[0].max(axis=0)
    bx0, by0 = b[0].min(axis=0)
    bx1, by1 = b[0].max(axis=0)
    ha, hb = ay1 - ay0, by1 - by0
    if min(ha, hb) <= 0 or max(ha, hb) > 1.5 * min(ha, hb):
        return None
    if min(ay1, by1) - max(ay0, by0) < 0.6 * min(ha, hb):
        return None
    if max(ax0, bx0) - min(ax1, bx1) > gap * max(ha, hb):
        return None
    x0, y0 = min(ax0, bx0), min(ay0, by0)
    x1, y1 = max(ax1, bx1), max(ay1, by1)
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return quad, min(a[1], b[1])


def equalise(image: ImageArray, clip_limit: float = 2.0) -> ImageArray:
    """Local contrast equalisation (CLAHE on the lightness, 8 x 8 tiles) of a BGR image: a
    dim plate in a shadowed bumper stands out for the text detector."""
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8))
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), dtype=np.uint8)


def widen_quad(quad: Quad, fraction: float) -> Quad:
    """``quad`` (ordered) grown along its own width by ``fraction`` of that width, half on
    each side (a test-time variant of a text box: the ends of a line the detector clipped).

    >>> widen_quad(np.array([[0, 0], [100, 0], [100, 20], [0, 20]], np.float32), 0.1).tolist()
    [[-5.0, 0.0], [105.0, 0.0], [105.0, 20.0], [-5.0, 20.0]]
    """
    along = ((quad[1] - quad[0]) + (quad[2] - quad[3])) / 2.0 * (fraction / 2.0)
    shift = np.array([-along, along, along, -along], dtype=np.float32)
    return np.asarray(quad + shift, dtype=np.float32)


def warp_quad(image: ImageArray, quad: Quad) -> ImageArray:
    """The upright patch of ``image`` under ``quad`` (perspective warp; a patch taller than
    1.5 x its width is turned a quarter, as vertical text)."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    patch = cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    if height >= 1.5 * width:
        patch = np.rot90(patch)
    return np.ascontiguousarray(patch, dtype=np.uint8)


def vehicle_crop(image: ImageArray, box: Sequence[float] | None,
                 ) -> tuple[ImageArray, tuple[int, int, int, int]]:
    """The vehicle's pixels and their region (x0, y0, x1, y1) in the image; ``box`` is
    normalised x1, y1, x2, y2 (None or degenerate: the whole image).

    >>> crop, region = vehicle_crop(np.zeros((100, 200, 3), np.uint8), (0.1, 0.5, 0.6, 1.2))
    >>> crop.shape, region
    ((50, 100, 3), (20, 50, 120, 100))
    """
    height, width = image.shape[:2]
    region = (0, 0, width, height)
    if box is not None:
        x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
        px = (round(x1 * width), round(y1 * height), round(x2 * width),
              round(y2 * height))
        if px[2] - px[0] >= 2 and px[3] - px[1] >= 2:
            region = px
    x0, y0, x1p, y1p = region
    return np.ascontiguousarray(image[y0:y1p, x0:x1p]), region


def to_image_box(box: Sequence[float], region: tuple[int, int, int, int], width: int,
                 height: int) -> tuple[float, float, float, float]:
    """A box normalised to the crop ``region`` → normalised to the whole image.

    >>> to_image_box((0.0, 0.5, 1.0, 1.0), (20, 50, 120, 100), 200, 100)
    (0.1, 0.75, 0.6, 1.0)
    """
    x0, y0, x1, y1 = region
    cw, ch = x1 - x0, y1 - y0
    return (round((x0 + box[0] * cw) / width, 4), round((y0 + box[1] * ch) / height, 4),
            round((x0 + box[2] * cw) / width, 4), round((y0 + box[3] * ch) / height, 4))
