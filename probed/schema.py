"""The JSON Schema of a checks file, for editors and CI (``probed schema``).

The common keys' schemas come from their declarations in :mod:`probed.common` (each key's
YAML type and description); each check type adds one closed ``oneOf`` branch from its options
model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from probed.common import DEFAULT_KEYS, REQUIRED_KEYS, key_fields, key_of
from probed.plugins import CheckTypeInfo

__all__ = ["check_file_schema", "common_schema"]


def common_schema() -> dict[str, Any]:
    """The schema of each common key, by key (required keys first)."""
    out: dict[str, Any] = {}
    for f in key_fields():
        declared = key_of(f)
        schema = TypeAdapter(declared.input).json_schema()
        if declared.doc:
            schema["description"] = declared.doc
        out[f.name] = schema
    return out


def check_file_schema(types: Mapping[str, CheckTypeInfo]) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a checks file, one ``oneOf`` branch per check type."""
    common = common_schema()
    defs: dict[str, Any] = {}
    variants: list[dict[str, Any]] = []
    for name in sorted(types):
        cls = types[name].cls
        schema = cls.options_model.model_json_schema(ref_template=f"#/$defs/{name}.{{model}}")
        for def_name, definition in schema.pop("$defs", {}).items():
            defs[f"{name}.{def_name}"] = definition
        variant: dict[str, Any] = {
            "type": "object",
            "title": f"{name} check",
            "properties": {
                **common,
                **schema.get("properties", {}),
                "type": {"const": name, "description": common["type"].get("description", "")},
            },
            "required": [*REQUIRED_KEYS, *schema.get("required", [])],
            "additionalProperties": False,
        }
        if cls.description or schema.get("description"):
            variant["description"] = cls.description or schema["description"]
        variants.append(variant)
    fallback = {"type": "object", "properties": common, "required": list(REQUIRED_KEYS)}
    defaults = {
        "type": "object",
        "properties": {k: common[k] for k in DEFAULT_KEYS},
        "additionalProperties": False,
        "description": "defaults for every check in this file",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "probed checks file",
        "type": ["object", "null"],
        "properties": {
            "defaults": defaults,
            "checks": {
                "type": ["array", "null"],
                "items": {"oneOf": variants} if variants else fallback,
            },
        },
        "additionalProperties": False,
        "$defs": defs,
    }
