"""The class-pair rule: pairs found from real class-name styles, none in class lists without sides, named rules,
and the swaps every mirror uses."""

from __future__ import annotations

import numpy as np
import pytest

from datatools.core.errors import DatatoolsError
from datatools.core.lateral import (
    LateralPairs,
    PairSource,
    applied_mirrors,
    channel_permutation,
    check_rotation,
    find_pairs,
    resolve_pairs,
    rotation_map,
    value_lut,
)

HAND_BONES = [f"finger-{i}" for i in range(1, 20)] + ["Trapezium", "Trapezoid", "Capitate", "Hamate", "Scaphoid",
                                                       "Lunate", "Triquetrum", "Pisiform", "Radius", "Ulna"]
TRASH = ["General trash", "Paper", "Paper pack", "Metal", "Glass", "Plastic", "Styrofoam", "Plastic bag", "Battery",
         "Clothing"]


def _cats(names: list[str]) -> list[dict[str, object]]:
    return [{"id": 10 + i, "name": n} for i, n in enumerate(names)]


def _named_pairs(names: list[str]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    pairs = find_pairs(_cats(names))
    by_id = {10 + i: n for i, n in enumerate(names)}
    return ({(by_id[a], by_id[b]) for a, b in pairs.horizontal}, {(by_id[a], by_id[b]) for a, b in pairs.vertical})


@pytest.mark.parametrize(("names", "horizontal", "vertical"), [
    # chest X-ray (JSRT / Montgomery style)
    (["left_lung", "right_lung", "left_clavicle", "right_clavicle", "heart"],
     {("left_lung", "right_lung"), ("left_clavicle", "right_clavicle")}, set()),
    (["lung_left", "lung_right"], {("lung_left", "lung_right")}, set()),
    (["l_kidney", "r_kidney", "liver"], {("l_kidney", "r_kidney")}, set()),
    (["Kidney-L", "Kidney-R", "Spleen"], {("Kidney-L", "Kidney-R")}, set()),
    (["LEFT_LUNG", "RIGHT_LUNG"], {("LEFT_LUNG", "RIGHT_LUNG")}, set()),
    (["Left Lung", "Right Lung", "Heart"], {("Left Lung", "Right Lung")}, set()),
    (["LeftLung", "RightLung"], {("LeftLung", "RightLung")}, set()),
    (["adrenal gland (L)", "adrenal gland (R)"], {("adrenal gland (L)", "adrenal gland (R)")}, set()),
    # road lanes, shoes, hands
    (["lane-left", "lane-right", "road"], {("lane-left", "lane-right")}, set()),
    (["left shoe", "right shoe"], {("left shoe", "right shoe")}, set()),
    (["Left Hand", "Right Hand", "face"], {("Left Hand", "Right Hand")}, set()),
    # top/bottom and upper/lower, and both in one name (dental quadrants)
    (["upper_lip", "lower_lip"], set(), {("upper_lip", "lower_lip")}),
    (["top-border", "bottom-border"], set(), {("top-border", "bottom-border")}),
    (["upper_left_molar", "upper_right_molar", "lower_left_molar", "lower_right_molar"],
     {("upper_left_molar", "upper_right_molar"), ("lower_left_molar", "lower_right_molar")},
     {("upper_left_molar", "lower_left_molar"), ("upper_right_molar", "lower_right_molar")}),
    # one side alone pairs nothing; two candidates for one side pair nothing (ambiguous)
    (["left_lung", "heart"], set(), set()),
    (["left_lung", "Left Lung", "right_lung"], set(), set()),
    # words that merely contain a side word do not count
    (["leftover", "rightmost", "lowercase", "toppings", "Bright", "Later"], set(), set()),
], ids=lambda v: ",".join(v) if isinstance(v, list) else None)
def test_auto_finds_pairs_in_real_name_styles(names: list[str], horizontal: set[tuple[str, str]],
                                              vertical: set[tuple[str, str]]) -> None:
    assert _named_pairs(names) == (horizontal, vertical)


@pytest.mark.parametrize("names", [HAND_BONES, TRASH, HAND_BONES + TRASH], ids=["hand-bones", "trash", "both"])
def test_auto_finds_no_pairs_where_classes_carry_no_side(names: list[str]) -> None:
    pairs = find_pairs(_cats(names))
    assert not pairs and pairs.horizontal == () and pairs.vertical == ()


def test_named_rule_resolves_names_and_axis() -> None:
    cats = _cats(["shoe a", "shoe b", "upper_lip", "lower_lip", "x"])
    pairs = resolve_pairs("shoe a=shoe b, upper_lip=lower_lip", cats)
    assert (pairs.horizontal, pairs.vertical, pairs.source) == (((10, 11),), ((12, 13),), PairSource.NAMED)
    none = resolve_pairs("none", _cats(["left_x", "right_x"]))
    assert not none and none.named


@pytest.mark.parametrize(("spec", "message"), [
    ("left_x", "LEFT=RIGHT"), ("a=", "LEFT=RIGHT"), ("left_x=nope", "'nope' is not a class"),
    ("left_x=left_x", "itself"), ("left_x=right_x,left_x=y", "must not share a class"),
])
def test_named_rule_errors(spec: str, message: str) -> None:
    with pytest.raises(DatatoolsError, match=message):
        resolve_pairs(spec, _cats(["left_x", "right_x", "y"]))


def test_mirror_maps_compose_and_half_turns_swap_both() -> None:
    pairs = LateralPairs(((1, 2),), ((3, 4), (2, 5)))
    assert pairs.mirror_map(True, False) == {1: 2, 2: 1}
    assert pairs.mirror_map(False, True) == {2: 5, 3: 4, 4: 3, 5: 2}
    hv = pairs.mirror_map(True, True)
    # a label mirrored left-right then up-down: 1 -> 2 -> 5, 5 -> 5 -> 2 -> 1
    assert hv == {1: 5, 2: 1, 3: 4, 4: 3, 5: 2}
    assert rotation_map(pairs, 180.0) == hv == rotation_map(pairs, 170.0)
    assert rotation_map(pairs, 15.0) == {} and rotation_map(pairs, 90.0) == {}


def test_quarter_turns_need_a_named_rule() -> None:
    auto = find_pairs(_cats(["left_x", "right_x"]))
    with pytest.raises(DatatoolsError, match="quarter turns"):
        check_rotation(auto, [15.0, 90.0])
    check_rotation(auto, [-15.0, 15.0, 180.0])
    check_rotation(resolve_pairs("none", _cats(["left_x", "right_x"])), [90.0])
    check_rotation(find_pairs(_cats(TRASH)), [90.0, 270.0])


def test_lut_and_channel_permutation() -> None:
    lut = value_lut({7: 9, 9: 7}, {3: 1, 7: 2, 9: 3})
    mask = np.array([[0, 1, 2, 3, 255]], np.uint8)
    assert lut[mask].tolist() == [[0, 1, 3, 2, 255]]
    assert channel_permutation({7: 9, 9: 7}, [None, 3, 7, 9]) == [0, 1, 3, 2]
    assert channel_permutation({7: 9, 9: 7}, [3, 7, 9]) == [0, 2, 1]


@pytest.mark.parametrize(("applied", "expected"), [
    ([("HorizontalFlip", {})], (True, False)),
    ([("HorizontalFlip", {}), ("HorizontalFlip", {})], (False, False)),
    ([("VerticalFlip", {}), ("Affine", {"rotate": 10})], (False, True)),
    ([("RandomRotate90", {"factor": 2})], (True, True)),
    ([("RandomRotate90", {"factor": 1})], (False, False)),
    ([("D4", {"group_element": "h"})], (True, False)),
    ([("D4", {"group_element": "r180"}), ("HorizontalFlip", {})], (False, True)),
])
def test_applied_mirrors(applied: list[tuple[str, dict[str, object]]], expected: tuple[bool, bool]) -> None:
    assert applied_mirrors(applied) == expected


def test_json_round_trip() -> None:
    pairs = LateralPairs(((1, 2),), ((3, 4),), PairSource.AUTO)
    assert LateralPairs.from_json(pairs.to_json()) == pairs
    assert not LateralPairs.from_json(None)
