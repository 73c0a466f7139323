"""Small lxml helpers shared by the layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast


def default_ns(namespace: str | None) -> Mapping[str, str]:
    """An nsmap making ``namespace`` the default one.

    lxml accepts ``None`` as the key of the default namespace; lxml-stubs
    types the keys as ``str``, hence the cast in this one place.
    """
    return cast("Mapping[str, str]", {None: namespace} if namespace else {})
