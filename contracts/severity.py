"""How bad an incident is; shared by incidents and the monitoring policies that open them."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"
