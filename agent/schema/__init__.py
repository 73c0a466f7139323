"""Schema layer: the YANG data model (yangson, built from yang/ and pyang's IETF
modules) and validation of configurations and RPC input against it.

``model`` lists modules and answers per-element schema questions; ``validate``
checks whole trees; ``convert`` and ``translate`` are its halves (lxml to
yangson values, yangson errors to :class:`agent.errors.SchemaError`).
"""

from agent.schema.model import (
    Conformance,
    ModuleInfo,
    NodeInfo,
    NodeKind,
    SchemaModel,
    SchemaNodeRef,
    SubmoduleInfo,
)
from agent.schema.validate import validate_config, validate_rpc_input

__all__ = [
    "Conformance",
    "ModuleInfo",
    "NodeInfo",
    "NodeKind",
    "SchemaModel",
    "SchemaNodeRef",
    "SubmoduleInfo",
    "validate_config",
    "validate_rpc_input",
]
