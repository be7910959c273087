"""The OpenAPI schema tells the truth about every answer (drf-spectacular
postprocessing hook, SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).

drf-spectacular documents the success answer of each operation; the server
also answers, for every operation:

* 401/403: not signed in, or the role may not (console/api/permissions.py);
  the token endpoint needs no sign-in and answers 429 while locked out;
* 400: a body or a query parameter refused, with the fields addressed, or a
  change the state of the data does not allow (a finished command);
* 404: an object in the path that does not exist, a page past the last one,
  a cursor that is not one of ours.

Query parameters declare what the server enforces (ids are positive
bigints, pages start at 1), so a request valid by the schema is never
refused. tests/console/test_api_contract.py runs Schemathesis against a
live console to keep it so.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field

from console.core.filters import MAX_ID, DateOrDateTimeFilter, IdFilter

ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
extend_schema_field(ID_SCHEMA)(IdFilter)
extend_schema_field(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
)(DateOrDateTimeFilter)

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_COMPONENT = {
    "type": "object",
    "description": (
        "`detail` for 401, 403, 404 and 429; for a 400, each refused field "
        "(`non_field_errors` for the request as a whole) with its messages"
    ),
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
WHY = {
    "400": "Refused input; the fields are named",
    "401": "Not signed in",
    "403": "Not signed in, or the role may not",
    "404": "No such object, page or cursor",
    "429": "Sign-in locked out after repeated failures; try again later",
}
PUBLIC = {"/api/v1/auth/token/"}
BOUNDED = {
    "page": {"type": "integer", "minimum": 1},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 500},
}


def _error(code: str) -> dict:
    return {"description": WHY[code], "content": {"application/json": {"schema": ERROR}}}


def _codes(path: str, method: str, operation: dict) -> list[str]:
    params = operation.get("parameters", [])
    query = [p for p in params if p.get("in") == "query"]
    codes = ["429"] if path in PUBLIC else ["401", "403"]
    # A change may be refused by its service for the state of the data.
    refusable = method != "get" or operation.get("requestBody")
    if refusable or any(p["name"] != "cursor" for p in query):
        codes.append("400")
    if "{" in path or any(p["name"] in ("page", "cursor") for p in query):
        codes.append("404")
    return codes


# Text the server refuses: NUL (DRF's text fields, and PostgreSQL, cannot hold it).
NO_NUL = "^[^\\u0000]*$"
# ... and, where it may not be blank, text that is only spaces (DRF trims it).
NOT_BLANK = (
    "^[^\\u0000]*"
    # a character Python's str.strip() keeps (its whitespace, not ECMAScript's \\s)
    "[^\\u0000\\t-\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    "[^\\u0000]*$"
)
DOCUMENTED_BODY = "application/json"


def _no_nul(schema: dict) -> None:
    """Every free-text string in a request schema refuses NUL, and says so."""
    if schema.get("type") == "string" and not {"enum", "format", "pattern"} & set(schema):
        schema["pattern"] = NOT_BLANK if schema.get("minLength", 0) >= 1 else NO_NUL
    if schema.get("format") == "binary":
        schema.setdefault("minLength", 1)  # DRF's FileField refuses an empty file
    for key in ("properties",):
        for sub in schema.get(key, {}).values():
            _no_nul(sub)
    if isinstance(schema.get("items"), dict):
        _no_nul(schema["items"])


def _refs(schema) -> list[str]:
    """Names of the components a schema refers to."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        own = [ref.rsplit("/", 1)[-1]] if ref.startswith("#/components/schemas/") else []
        return own + [n for v in schema.values() for n in _refs(v)]
    if isinstance(schema, list):
        return [n for v in schema for n in _refs(v)]
    return []


def _request_bodies(result) -> None:
    """JSON is the documented body format (the parsers still read forms, for
    the browsable API); request components declare what they refuse."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            content = (
                operation.get("requestBody", {}).get("content")
                if isinstance(operation, dict)
                else None
            )
            if content and DOCUMENTED_BODY in content:
                for other in [t for t in content if t != DOCUMENTED_BODY]:
                    del content[other]
    components = result.get("components", {}).get("schemas", {})
    for name, schema in components.items():
        if name.endswith("Request"):
            _no_nul(schema)
    # The policy contract (agent/policy) refuses a field it does not know.
    closed, todo = set(), ["PolicySpec", "PolicySpecRequest"]
    while todo:
        name = todo.pop()
        if name in closed or name not in components:
            continue
        closed.add(name)
        components[name]["additionalProperties"] = False
        todo.extend(_refs(components[name]))


def postprocess(result, generator, request, public):
    _request_bodies(result)
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "put", "patch", "post", "delete"}:
                continue
            if path in PUBLIC:
                operation["security"] = [{}]
            for param in operation.get("parameters", []):
                if param.get("in") == "query" and param["name"] in BOUNDED:
                    param["schema"] = {**param.get("schema", {}), **BOUNDED[param["name"]]}
                elif param.get("in") == "query" and param["name"] != "cursor":
                    _no_nul(param.get("schema", {}))
                is_id = param.get("in") == "path" and param["name"] == "id"
                if is_id and param.get("schema", {}).get("type") == "integer":
                    param["schema"] = {**param["schema"], **ID_SCHEMA}
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method, operation):
                responses.setdefault(code, _error(code))
    return result
