"""Just enough of Kubernetes' protobuf encoding to read what `kubectl create` sends for core types.

kubectl posts built-in objects as `application/vnd.kubernetes.protobuf`: the bytes `k8s\\0`, then an
`Unknown` message {typeMeta, raw}, where `raw` is the object's own message. We decode the wire format
generically and map field numbers for the few kinds kubectl creates imperatively; answers are JSON
(kubectl accepts both).
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of every field of a message."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _map(entries: list[bytes], binary: bool = False) -> dict[str, Any]:
    result = {}
    for entry in entries:
        parts = {n: v for n, _, v in fields(entry)}
        key = parts.get(1, b"").decode()
        value = parts.get(2, b"")
        result[key] = base64.b64encode(value).decode() if binary else value.decode()
    return result


def _meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    labels, annotations, finalizers = [], [], []
    for number, _, value in fields(data):
        if number == 1:
            meta["name"] = value.decode()
        elif number == 2:
            meta["generateName"] = value.decode()
        elif number == 3:
            meta["namespace"] = value.decode()
        elif number == 6 and value:
            meta["resourceVersion"] = value.decode()
        elif number == 11:
            labels.append(value)
        elif number == 12:
            annotations.append(value)
        elif number == 14:
            finalizers.append(value.decode())
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    if finalizers:
        meta["finalizers"] = finalizers
    return {k: v for k, v in meta.items() if v != ""}


def _secret(parts: list) -> dict:
    obj: dict[str, Any] = {}
    data, string_data = [], []
    for number, _, value in parts:
        if number == 1:
            obj["metadata"] = _meta(value)
        elif number == 2:
            data.append(value)
        elif number == 3:
            obj["type"] = value.decode()
        elif number == 4:
            string_data.append(value)
        elif number == 5:
            obj["immutable"] = bool(value)
    if data:
        obj["data"] = _map(data, binary=True)
    if string_data:
        obj["stringData"] = _map(string_data)
    return obj


def _configmap(parts: list) -> dict:
    obj: dict[str, Any] = {}
    data, binary = [], []
    for number, _, value in parts:
        if number == 1:
            obj["metadata"] = _meta(value)
        elif number == 2:
            data.append(value)
        elif number == 3:
            binary.append(value)
        elif number == 4:
            obj["immutable"] = bool(value)
    if data:
        obj["data"] = _map(data)
    if binary:
        obj["binaryData"] = _map(binary, binary=True)
    return obj


def _metadata_only(parts: list) -> dict:
    return {"metadata": _meta(next((v for n, _, v in parts if n == 1), b""))}


DECODERS = {"Secret": _secret, "ConfigMap": _configmap, "Namespace": _metadata_only, "ServiceAccount": _metadata_only}


def decode(body: bytes) -> dict:
    """A protobuf-encoded core object as the JSON dict the API would have received."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf message")
    envelope = {n: v for n, _, v in fields(body[len(MAGIC):])}
    type_meta = {n: v for n, _, v in fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    if kind not in DECODERS:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not supported by the emulator; send JSON")
    obj = DECODERS[kind](fields(envelope.get(2, b"")))
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
