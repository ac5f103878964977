"""OpenAPI schemas that say what the service really accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

# Litestar's own Struct plugin, extended rather than re-implemented; tests/reliability checks
# the result, so a Litestar upgrade that moves it fails loudly.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """A request Struct with `forbid_unknown_fields=True` answers 400 to any other key; Litestar
    documents every Struct as an open object, so clients and fuzzers were told extra keys are fine."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False
        return schema
