"""The wire contract of both services.

- v1/        stubs generated from proto/node/api/v1/pcpsim.proto (`python -m node.api.generate`;
             tests/test_generated.py proves them up to date)
- validate   input validation shared by both services: every check raises InvalidArgument
- errors     domain errors and the one table that maps them to gRPC status codes
- generate   the generator of v1/
"""
