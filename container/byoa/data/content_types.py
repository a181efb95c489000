"""Media types as SageMaker sends them: any case, parameters, spaces."""

from __future__ import annotations

from dataclasses import dataclass, field

CSV = "text/csv"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"


@dataclass(frozen=True)
class MediaType:
    essence: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        extra = "".join(f";{k}={v}" for k, v in self.params.items())
        return self.essence + extra


def parse(value: str) -> MediaType:
    """'text/CSV; Label_Size=0' -> MediaType('text/csv', {'label_size': '0'})."""
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for part in parts[1:]:
        if not part:
            continue
        name, _, val = part.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    return MediaType(parts[0].lower(), params)
