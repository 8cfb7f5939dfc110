#!/usr/bin/python3
"""A proxyless gRPC xDS client of another implementation and age than grpc-js-xds: gRPC C-core
through Debian's python3-grpcio (1.51 on Debian 12). Test fixture for test/envoy.

usage: grpc_xds_client.py TARGET METHOD   (GRPC_XDS_BOOTSTRAP names the bootstrap file)

Reads one JSON request per line on stdin, {"n": calls, "metadata": {"k": "v"}, "timeout": s},
makes the calls on one channel and answers with one JSON line per request:
{"names": [answering backend, ...], "errors": ["UNAVAILABLE: details", ...]}.
"""
import json
import sys

import grpc


def main() -> int:
    target, method = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    print(json.dumps({"ready": grpc.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        names, errors = [], []
        for _ in range(int(req.get("n", 1))):
            try:
                reply = call(b"", metadata=list(req.get("metadata", {}).items()),
                             timeout=float(req.get("timeout", 5)), wait_for_ready=True)
                names.append(reply.decode())
            except grpc.RpcError as e:  # the status a caller sees
                errors.append(f"{e.code().name}: {e.details()}")
        print(json.dumps({"names": names, "errors": errors}), flush=True)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
