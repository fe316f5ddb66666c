"""The JSON rules of stored values (django_jobs.codec), without a database."""

from __future__ import annotations

import ast
import json
import math
import pathlib

import pytest

from django_jobs import codec, rows
from django_jobs.codec import (
    check_stored,
    dumps,
    encode,
    encode_payload,
    from_jsonb,
    reject_oversized,
    reject_unstorable,
    storable,
    unstorable_text,
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("plain", None),
        ("caf\u00e9 \U0001f600", None),
        ("a\x00", "NUL character"),
        ("a\ud800", "lone surrogate (\\ud800)"),
        ("\udc00b", "lone surrogate (\\udc00)"),
        ("\ud83d\ude00", "lone surrogate"),  # a pair as two code points is still invalid text
    ],
)
def test_unstorable_text(text, reason):
    found = unstorable_text(text)
    assert found is None if reason is None else reason in found


@pytest.mark.parametrize(
    "value",
    ["\U0001f600", ["\\ud800"], {"k\U0001f511": "\\\\ud800"}, "\\u0000", "\ud7ff\ue000"],
)
def test_storable_json_passes_unchanged(value):
    encoded = json.dumps(value)
    assert reject_unstorable(encoded, "it") is encoded


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("\ud800", "it contains a lone surrogate (\\ud800)"),
        ({"\udfff": 1}, "it contains a lone surrogate (\\udfff)"),
        (["\ude00\ud83d"], "it contains a lone surrogate"),  # low before high: no pair
        ("\\\ud800", "it contains a lone surrogate"),  # a backslash, then a surrogate
        (["a\x00"], "it contains a NUL character"),
    ],
)
def test_unstorable_json_is_a_type_error(value, reason):
    with pytest.raises(TypeError) as info:
        reject_unstorable(json.dumps(value), "it")
    assert reason in str(info.value)


def test_encode_is_compact_and_matches_json_dumps():
    value = {"a": [1, 2.5, None, True], "b": "caf\u00e9", "c": {"d": "\U0001f600"}}
    assert encode(value) == '{"a":[1,2.5,null,true],"b":"caf\\u00e9","c":{"d":"\\ud83d\\ude00"}}'
    assert encode(value) == json.dumps(value, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize("value", [math.nan, math.inf, [-math.inf]])
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode(value)
    with pytest.raises(TypeError, match=r"^the thing must be JSON-serializable: "):
        dumps(value, "the thing")


def test_dumps_names_what_is_not_json():
    with pytest.raises(TypeError) as info:
        dumps({"when": object()}, "argument 'when' (object)")
    assert str(info.value).startswith("argument 'when' (object) must be JSON-serializable: ")
    assert "object is not JSON serializable" in str(info.value)
    assert isinstance(info.value.__cause__, TypeError)


def test_an_escaped_backslash_before_u0000_is_not_a_nul():
    # The text backslash + "u0000" encodes as \\u0000: no NUL character in it.
    assert reject_unstorable(encode("\\u0000"), "it") == '"\\\\u0000"'
    with pytest.raises(TypeError, match="it contains a NUL character"):
        reject_unstorable(encode("\\\x00"), "it")  # a backslash, then a real NUL


def test_a_surrogate_pair_is_storable():
    encoded = encode(["\U0001f600", "\U00010000"])
    assert "\\ud83d\\ude00" in encoded
    assert reject_unstorable(encoded, "it") is encoded


@pytest.mark.parametrize(
    ("size", "limit", "refused"),
    [(10, 10, False), (11, 10, True), (10**9, 0, False)],  # 0: no limit
)
def test_reject_oversized(size, limit, refused):
    if not refused:
        reject_oversized(size, limit, "progress is")
        return
    with pytest.raises(ValueError) as info:
        reject_oversized(size, limit, "progress is")
    assert str(info.value) == (
        f"progress is {size:,} bytes of JSON, over DJANGO_JOBS['MAX_PAYLOAD_BYTES'] ({limit:,})"
    )


def test_encode_payload_checks_json_size_and_storability():
    assert encode_payload({"done": 3}, "progress", 100) == '{"done":3}'
    with pytest.raises(ValueError, match=r"^progress is 2,010 bytes of JSON, over .*\(2,000\)"):
        encode_payload("x" * 2008, "progress", 2000)
    with pytest.raises(TypeError, match=r"^progress must be JSON-serializable"):
        encode_payload({1, 2}, "progress", 0)
    with pytest.raises(TypeError, match=r"^progress contains a lone surrogate"):
        encode_payload("\ud800", "progress", 0)
    with pytest.raises(TypeError, match=r"^progress contains a NUL character"):
        encode_payload("a\x00", "progress", 0)


def test_check_stored_returns_the_text_unchanged():
    encoded = encode({"a": 1})
    assert check_stored(encoded, "the task's return value", 0) is encoded
    with pytest.raises(ValueError, match=r"^the task's return value is 7 bytes of JSON"):
        check_stored(encoded, "the task's return value", 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("plain", "plain"), ("bin\x00ary\x00", "bin\\x00ary\\x00"), ("caf\u00e9", "caf\u00e9")],
)
def test_storable_writes_nul_out(text, expected):
    assert storable(text) == expected
    assert unstorable_text(storable(text)) is None


def test_from_jsonb_decodes_text_and_keeps_decoded_values():
    assert from_jsonb('{"a":[1]}') == {"a": [1]}
    assert from_jsonb(b"[1,2]") == [1, 2]
    decoded = {"a": 1}
    assert from_jsonb(decoded) is decoded
    assert from_jsonb(None) is None


@pytest.mark.parametrize("module", [codec, rows])
def test_leaf_modules_import_nothing_of_django_jobs(module):
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body  # module level: a TYPE_CHECKING block is an ast.If
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert "json" in imported or "dataclasses" in imported
    assert [name for name in imported if name and name.startswith("django_jobs")] == []
