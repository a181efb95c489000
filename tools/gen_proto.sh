#!/usr/bin/env bash
# Regenerates container/byoa/data/byoa_record_pb2.py from byoa_record.proto.
# Needs grpcio-tools (it bundles protoc); pick one whose protoc is not newer than
# the protobuf runtime pinned in requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/../container/byoa/data"
python -m grpc_tools.protoc -I. --python_out=. byoa_record.proto
