"""The OpenAPI schema tells the truth about every answer (drf-spectacular
postprocessing hook, SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).

drf-spectacular documents the success answer of each operation; the server
also answers, for every operation:

* 401/403: not signed in, or the role may not (console/api/permissions.py);
  the token endpoint needs no sign-in and answers 429 while locked out;
* 400: a body or a query parameter refused, with the fields addressed;
* 404: an object in the path that does not exist, a page past the last one,
  a cursor that is not one of ours.

Query parameters declare what the server enforces (ids are positive
bigints, pages start at 1), so a request valid by the schema is never
refused. tests/console/test_api_contract.py runs Schemathesis against a
live console to keep it so.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field

from console.core.filters import MAX_ID, IdFilter

ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
extend_schema_field(ID_SCHEMA)(IdFilter)

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
BOUNDED = {"page": {"type": "integer", "minimum": 1}}


def _error(code: str) -> dict:
    return {"description": WHY[code], "content": {"application/json": {"schema": ERROR}}}


def _codes(path: str, operation: dict) -> list[str]:
    params = operation.get("parameters", [])
    query = [p for p in params if p.get("in") == "query"]
    codes = ["429"] if path in PUBLIC else ["401", "403"]
    if operation.get("requestBody") or any(p["name"] not in ("cursor",) for p in query):
        codes.append("400")
    if "{" in path or any(p["name"] in ("page", "cursor") for p in query):
        codes.append("404")
    return codes


def postprocess(result, generator, request, public):
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
                is_id = param.get("in") == "path" and param["name"] == "id"
                if is_id and param.get("schema", {}).get("type") == "integer":
                    param["schema"] = {**param["schema"], **ID_SCHEMA}
            responses = operation.setdefault("responses", {})
            for code in _codes(path, operation):
                responses.setdefault(code, _error(code))
    return result
