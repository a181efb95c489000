"""Media types: the one registry that training channels and the inference server both read.

Each entry says where the type may appear: in a training channel (``ContentType`` of
``inputdataconfig.json``), in an ``/invocations`` request body, in a response. The decoders
and encoders live with their layer (``data`` for channels, ``serving.codecs`` for requests
and responses); a test checks that every capability declared here has its codec.
SageMaker sends types in any case, with parameters and spaces (``text/CSV; label_size=0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CSV = "text/csv"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
JSON = "application/json"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
LIBSVM = "text/libsvm"


@dataclass(frozen=True)
class Media:
    name: str
    aliases: tuple = ()
    channel: bool = False  # readable in a training channel
    request: bool = False  # readable in an /invocations body
    response: bool = False  # writable as an /invocations answer


REGISTRY: dict[str, Media] = {
    m.name: m
    for m in (
        Media(CSV, channel=True, request=True, response=True),
        Media(RECORDIO_PROTOBUF, channel=True, request=True, response=True),
        Media(JSON, request=True, response=True),
        Media(JSONLINES, aliases=("application/x-jsonlines", "application/jsonl"), request=True, response=True),
        Media(NPY, request=True),
        Media(LIBSVM, aliases=("text/x-libsvm",), channel=True, request=True),
    )
}
_ALIASES = {alias: m.name for m in REGISTRY.values() for alias in m.aliases}


def names(capability: str) -> tuple[str, ...]:
    """The registered types with one capability: ``channel``, ``request`` or ``response``."""
    return tuple(name for name, m in REGISTRY.items() if getattr(m, capability))


@dataclass(frozen=True)
class MediaType:
    """A parsed type: ``essence`` is the registered name when the type (or an alias) is registered."""

    essence: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        extra = "".join(f";{k}={v}" for k, v in self.params.items())
        return self.essence + extra


def parse(value: str) -> MediaType:
    """'text/CSV; Label_Size=0' -> MediaType('text/csv', {'label_size': '0'}); aliases become their registered name."""
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for part in parts[1:]:
        if not part:
            continue
        name, _, val = part.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    essence = parts[0].lower()
    return MediaType(_ALIASES.get(essence, essence), params)
