"""JSON Merge Patch (RFC 7386): apply_patch and diff, including copy-on-write sharing."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickrelay.protocol import apply_patch, diff

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from(["a", "b", "c", "d", "é", ""])
LEAVES = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, 0.0, -0.0, 1.0, True, False, "", "x"])
    | st.text(max_size=4)
)
# Lists may hold nulls: arrays are replaced whole, so their content is never interpreted.
DOCS = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner | st.none(), max_size=3) | st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=8,
)
OBJECTS = st.dictionaries(KEYS, DOCS, max_size=4)
PATCHES = st.recursive(
    LEAVES | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=8,
)


def strict(value: Any) -> Any:
    """A form whose ``==`` sees what the wire sees: 1, 1.0 and True differ, so do 0.0 and
    -0.0, and key order does not matter."""
    if isinstance(value, dict):
        return ("dict", frozenset((key, strict(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", tuple(strict(item) for item in value))
    return (type(value).__name__, repr(value))


def reference_merge(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2 pseudo-code, verbatim, on deep copies."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = reference_merge(result.get(name), value)
    return result


# RFC 7386 appendix A, one row per example.
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_EXAMPLES)
def test_apply_patch_matches_rfc_7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert apply_patch(target, patch) == expected


def test_empty_patch_returns_the_target_itself() -> None:
    target = {"a": {"b": 1}}
    assert apply_patch(target, {}) is target


def test_deleting_a_missing_key_returns_the_target_itself() -> None:
    target = {"a": 1}
    assert apply_patch(target, {"zz": None}) is target


def test_empty_nested_patch_on_an_existing_dict_returns_the_target_itself() -> None:
    target = {"a": {"b": 1}}
    assert apply_patch(target, {"a": {}, "zz": None}) is target


def test_empty_nested_patch_on_a_missing_key_creates_an_empty_object() -> None:
    assert apply_patch({"a": 1}, {"q": {}}) == {"a": 1, "q": {}}


def test_setting_the_same_object_returns_the_target_itself() -> None:
    inner = [1, 2]
    target = {"a": inner}
    assert apply_patch(target, {"a": inner}) is target


def test_apply_patch_shares_untouched_subtrees() -> None:
    untouched = {"x": [1, 2], "y": {"z": 3}}
    target = {"p1": untouched, "p2": {"hp": 10, "inv": {"gold": 1}}}
    result = apply_patch(target, {"p2": {"hp": 9}})
    assert result["p1"] is untouched
    assert result["p2"]["inv"] is target["p2"]["inv"]
    assert result is not target and result["p2"] is not target["p2"]


def test_apply_patch_does_not_mutate_target_or_patch() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": 4}
    patch = {"a": {"b": None, "e": {"f": None, "g": 1}}, "d": None}
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    apply_patch(target, patch)
    assert (target, patch) == before


def test_null_deletes_a_key() -> None:
    assert apply_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_non_dict_patch_replaces_target_and_is_returned_itself() -> None:
    patch = [1, {"a": None}]
    assert apply_patch({"a": 1}, patch) is patch


def test_dict_patch_onto_non_dict_target_starts_from_empty() -> None:
    assert apply_patch({"a": 5}, {"a": {"b": 1, "c": None}}) == {"a": {"b": 1}}
    assert apply_patch("text", {"b": 1}) == {"b": 1}


def test_nulls_inside_newly_created_objects_are_stripped() -> None:
    result = apply_patch({}, {"a": {"b": None, "c": {"d": None, "e": 1}}})
    assert result == {"a": {"c": {"e": 1}}}


def test_nulls_inside_lists_are_kept() -> None:
    assert apply_patch({}, {"a": [None, {"b": None}]}) == {"a": [None, {"b": None}]}


def test_scalar_type_change_is_applied() -> None:
    assert repr(apply_patch({"a": 1}, {"a": True})) == repr({"a": True})


def test_diff_of_equal_dicts_is_empty() -> None:
    assert diff({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}) == {}


def test_diff_identity_shortcut_skips_shared_subtrees() -> None:
    shared = {"x": math.nan}  # NaN != NaN: only identity can tell it is unchanged
    assert diff({"p": shared}, {"p": shared}) == {}
    assert diff(shared, shared) == {}


def test_diff_returns_target_when_either_side_is_not_a_dict() -> None:
    target = [1, 2]
    assert diff({"a": 1}, target) is target
    assert diff("x", {"a": 1}) == {"a": 1}
    assert diff(1, 1) == 1


def test_diff_marks_removed_keys_with_null() -> None:
    assert diff({"a": 1, "b": 2}, {"b": 2}) == {"a": None}


def test_diff_recurses_into_nested_dicts() -> None:
    source = {"p": {"x": 1, "y": 2, "inv": {"gold": 5}}}
    target = {"p": {"x": 1, "y": 3, "inv": {"gold": 5}}}
    assert diff(source, target) == {"p": {"y": 3}}


def test_diff_sends_new_nested_dict_whole() -> None:
    assert diff({}, {"p": {"x": {"y": 1}}}) == {"p": {"x": {"y": 1}}}


def test_diff_replaces_lists_whole() -> None:
    assert diff({"a": [1, 2, 3]}, {"a": [1, 2]}) == {"a": [1, 2]}


def test_diff_replaces_dict_with_scalar_and_scalar_with_dict() -> None:
    assert diff({"a": {"b": 1}, "c": 1}, {"a": 2, "c": {"d": 1}}) == {"a": 2, "c": {"d": 1}}


@pytest.mark.parametrize(
    ("old", "new"),
    [(1, True), (1, 1.0), (0, False), (0.0, -0.0), ([1], [True]), ([{"a": 1}], [{"a": 1.0}])],
)
def test_diff_sees_changes_that_python_equality_hides(old: Any, new: Any) -> None:
    assert diff({"v": old}, {"v": new}) == {"v": new}
    assert repr(diff({"v": old}, {"v": new})["v"]) == repr(new)


def test_diff_of_an_emptied_nested_dict_deletes_its_keys() -> None:
    assert diff({"a": {"b": 1}}, {"a": {}}) == {"a": {"b": None}}


@PROPERTY
@given(source=OBJECTS, target=OBJECTS)
def test_apply_patch_of_diff_gives_target(source: dict[str, Any], target: dict[str, Any]) -> None:
    assert strict(apply_patch(source, diff(source, target))) == strict(target)


@PROPERTY
@given(source=OBJECTS, target=OBJECTS)
def test_diff_has_no_key_for_unchanged_values(
    source: dict[str, Any], target: dict[str, Any]
) -> None:
    patch = diff(source, target)
    for key, value in patch.items():
        assert key not in target or key not in source or strict(source[key]) != strict(value)


@PROPERTY
@given(source=OBJECTS)
def test_diff_of_a_deep_copy_is_empty(source: dict[str, Any]) -> None:
    assert diff(source, copy.deepcopy(source)) == {}


@PROPERTY
@given(target=DOCS | OBJECTS, patch=PATCHES)
def test_apply_patch_matches_the_rfc_pseudo_code(target: Any, patch: Any) -> None:
    assert strict(apply_patch(target, patch)) == strict(reference_merge(target, patch))


@PROPERTY
@given(target=DOCS | OBJECTS, patch=PATCHES)
def test_apply_patch_never_mutates_its_inputs(target: Any, patch: Any) -> None:
    before = (strict(target), strict(patch))
    apply_patch(target, patch)
    assert (strict(target), strict(patch)) == before


@PROPERTY
@given(source=OBJECTS, target=OBJECTS)
def test_diff_never_mutates_its_inputs(source: dict[str, Any], target: dict[str, Any]) -> None:
    before = (strict(source), strict(target))
    diff(source, target)
    assert (strict(source), strict(target)) == before


@PROPERTY
@given(source=OBJECTS, patch=st.dictionaries(KEYS, PATCHES, max_size=4))
def test_apply_patch_keeps_untouched_values_identical(
    source: dict[str, Any], patch: dict[str, Any]
) -> None:
    result = apply_patch(source, patch)
    for key, value in source.items():
        if key not in patch:
            assert result[key] is value
