"""The fast JSON path must store exactly what the API server sent: anything orjson cannot write
exactly goes through the standard encoder, and NaN never gets in."""

from __future__ import annotations

import json

import pytest

from ctpbackup.engines import jsoncodec

EXACT = [
    {"spec": {"replicas": 3, "ratio": 0.1, "flag": True, "none": None, "list": [1, "a", {}]}},
    {"metadata": {"annotations": {"crossplane.io/external-name": "ext-ÿ-名前-\u2028"}}},
    {"big": 123456789012345678901234567890, "negative": -(2**70)},  # beyond 64 bits: standard encoder
    {"surrogate": "\ud800"},                                          # lone surrogate: standard encoder
    {"float": 1e300, "tiny": 5e-324},
]


@pytest.mark.parametrize("value", EXACT)
def test_written_json_reads_back_identical(value):
    assert json.loads(jsoncodec.dumps(value)) == value


def test_big_integers_read_exactly():
    assert jsoncodec.loads(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890


@pytest.mark.parametrize("text, message", [
    ('{"a": NaN}', "^NaN is not valid JSON$"), ('{"a": Infinity}', "^Infinity is not valid JSON$"),
    ('[-Infinity]', "^-Infinity is not valid JSON$"), ("not json", r"^Expecting value: line 1 column 1 \(char 0\)$"),
])
def test_nan_infinity_and_garbage_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        jsoncodec.loads(text)


def test_output_is_compact():
    assert jsoncodec.dumps({"a": [1, 2], "b": {"c": "d"}}) == b'{"a":[1,2],"b":{"c":"d"}}'


@pytest.mark.parametrize("text, message", [('{"a": 1e400}', "^1e400 does not fit a float$"),
                                           ('[-1E+999]', r"^-1E\+999 does not fit a float$")])
def test_floats_that_overflow_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        jsoncodec.loads(text)


@pytest.mark.parametrize("value", EXACT[:2] + EXACT[4:])
def test_reading_what_was_written_gives_it_back(value):
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.loads(jsoncodec.dumps(value).decode()) == value


def test_a_string_that_looks_risky_still_reads_right():
    value = {"id": "1234567890123456789012", "big": 2**80}
    assert jsoncodec.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize("number", [2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30])
def test_integers_at_and_beyond_64_bits_stay_integers(number):
    for data in (f'{{"n": {number}}}', f'{{"n": {number}}}'.encode()):
        value = jsoncodec.loads(data)["n"]
        assert value == number and isinstance(value, int)


def test_text_with_a_lone_surrogate_escape_reads():
    assert jsoncodec.loads('{"s": "\\ud800"}') == {"s": "\ud800"}


def test_any_bytes_like_input_reads():
    data = b'{"a": [1, 12345678901234567890]}'
    for form in (data, bytearray(data), memoryview(data)):
        assert jsoncodec.loads(form) == {"a": [1, 12345678901234567890]}
