"""The committed gRPC stubs are exactly what the committed proto generates."""

import pathlib

import pytest

from node.api import generate

GENERATED = ("pcpsim_pb2.py", "pcpsim_pb2.pyi", "pcpsim_pb2_grpc.py")
COMMITTED = pathlib.Path(generate.ROOT) / "node" / "api" / "v1"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("stubs")
    generate.generate(out)
    return out / "node" / "api" / "v1"


@pytest.mark.parametrize("name", GENERATED)
def test_committed_stub_matches_regenerated(regenerated, name):
    """Regenerating from proto/node/api/v1/pcpsim.proto with the pinned grpcio-tools gives a
    byte-identical node/api/v1/<name>: nobody edited the stubs by hand or forgot to regenerate."""
    fresh = (regenerated / name).read_bytes()
    committed = (COMMITTED / name).read_bytes()
    assert fresh == committed, (
        f"node/api/v1/{name} differs from the generated file; run `python -m node.api.generate` and commit the result"
    )


def test_generation_writes_only_the_expected_stubs(regenerated):
    """protoc writes exactly the three stub files into node/api/v1 (no stray output that the
    comparison above would miss)."""
    assert sorted(p.name for p in regenerated.iterdir()) == sorted(GENERATED)
