"""The pure parts of the int8 detector measurement tools (``tools/quantize_detector.py``,
``tools/ort_timing.py``): calibration frame choice, the nodes left in fp32, the timing order."""

from __future__ import annotations

import pytest
from onnx import helper

from tools.ort_timing import rotations
from tools.quantize_detector import head_tail_nodes, spaced_indices, stem_nodes


@pytest.mark.parametrize(
    ("count", "wanted", "expected"),
    [
        (10, 2, [2, 7]),
        (100, 4, [12, 37, 62, 87]),
        (3, 5, [0, 1, 2]),
        (0, 4, []),
        (10, 0, []),
    ],
)
def test_spaced_indices(count: int, wanted: int, expected: list[int]) -> None:
    assert spaced_indices(count, wanted) == expected


def test_spaced_indices_distinct_and_in_range() -> None:
    for count in (7, 31, 377, 1394):
        got = spaced_indices(count, 32)
        assert got == sorted(set(got)) and all(0 <= i < count for i in got)
        assert len(got) == min(count, 32)


def _yolox_like() -> list[object]:
    """A YOLOX-shaped toy graph: stem conv + SiLU, a body conv, one head level."""
    node = helper.make_node
    return [
        node("Slice", ["images", "s"], ["focus"], name="Slice_4"),
        node("Conv", ["focus", "w0"], ["c0"], name="Conv_41"),
        node("Sigmoid", ["c0"], ["s0"], name="Sigmoid_42"),
        node("Mul", ["c0", "s0"], ["m0"], name="Mul_43"),
        node("Conv", ["m0", "w1"], ["c1"], name="Conv_47"),
        node("Sigmoid", ["c1"], ["s1"], name="Sigmoid_48"),
        node("Mul", ["c1", "s1"], ["m1"], name="Mul_49"),
        node("Conv", ["m1", "head.reg_preds.0.weight"], ["reg"], name="Conv_90"),
        node("Conv", ["m1", "head.obj_preds.0.weight"], ["obj"], name="Conv_91"),
        node("Conv", ["m1", "head.cls_preds.0.weight"], ["cls"], name="Conv_92"),
        node("Sigmoid", ["obj"], ["objp"], name="Sigmoid_93"),
        node("Sigmoid", ["cls"], ["clsp"], name="Sigmoid_94"),
        node("Concat", ["reg", "objp", "clsp"], ["cat"], name="Concat_95"),
        node("Reshape", ["cat", "shape"], ["flat"], name="Reshape_96"),
        node("Transpose", ["flat"], ["output"], name="Transpose_97"),
    ]


def test_head_tail_nodes_are_the_pred_convs_and_everything_after() -> None:
    assert head_tail_nodes(_yolox_like()) == [
        "Conv_90", "Conv_91", "Conv_92", "Sigmoid_93", "Sigmoid_94", "Concat_95",
        "Reshape_96", "Transpose_97",
    ]


def test_stem_nodes_are_the_first_conv_and_its_silu() -> None:
    assert stem_nodes(_yolox_like()) == ["Conv_41", "Sigmoid_42", "Mul_43"]
    assert stem_nodes([helper.make_node("Relu", ["x"], ["y"], name="r")]) == []


def test_rotations_start_each_round_with_the_next_model() -> None:
    assert rotations(3, 4) == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
    assert all(sorted(order) == [0, 1, 2] for order in rotations(3, 7))
