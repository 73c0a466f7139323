"""A small real SCEP CA for demos and tests (shares agent.pki.cms and agent.pki.scep)."""

from agent.labca.ca import LAB_CA_CAPS, LabCa, LabCaRequestError
from agent.labca.server import LabCaServer
from agent.labca.store import (
    LabCaError,
    LabCaNotFoundError,
    LabCaStateError,
    RequestRecord,
    RequestState,
)

__all__ = [
    "LAB_CA_CAPS",
    "LabCa",
    "LabCaError",
    "LabCaNotFoundError",
    "LabCaRequestError",
    "LabCaServer",
    "LabCaStateError",
    "RequestRecord",
    "RequestState",
]
