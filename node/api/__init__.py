"""The wire contract of both services.

- v1/        stubs generated from proto/node/api/v1/pcpsim.proto (`python -m node.api.generate`;
             tests/test_generated.py proves them up to date)
- validate   input validation shared by both services: every check raises InvalidArgument
- errors     domain errors and the one table that maps them to status codes (named as gRPC's; no grpc import)
- status     that table's grpc.StatusCode, for the wall's server interceptor
- fault_points the names fault rules meet (each service's methods and stream messages) and their check
- generate   the generator of v1/
"""
