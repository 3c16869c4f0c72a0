"""TLS and mutual TLS between real processes: every process serves and dials with a
certificate from a test CA (tests/certs.py); a client without a valid certificate cannot
connect, even holding the operator's token."""

import dataclasses

import grpc
import pytest

from coordinator.tools.cluster import ClusterConfig, LocalCluster, TlsPaths
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security
from tests.certs import Ca
from tests.integration.conftest import RPC_TIMEOUT, Handle, assert_audit_ok, run_cli

ROLES = ("housekeeping", "idle")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, rogue = Ca(str(d / "ca")), Ca(str(d / "rogue"), "rogue-ca")
    return ca, ca.issue("pcpsim"), ca.issue("client"), rogue, rogue.issue("intruder")


@pytest.fixture(scope="module")
def mtls_cluster(pki, tmp_path_factory):
    ca, server, _, _, _ = pki
    run_dir = tmp_path_factory.mktemp("mtls")
    config = ClusterConfig(roles=list(ROLES), tls=TlsPaths(server.cert, server.key, ca.path, client_auth=True))
    with LocalCluster(config, str(run_dir), state_file=str(run_dir / "cluster.json")) as cluster:
        h = Handle(cluster)
        try:
            yield h
        finally:
            h.close()


def code(address: str, sec: security.Security) -> grpc.StatusCode:
    """GetState (coordinator) or GetPcp (node, cpu 0 or 1) through `sec`; OK or the failure."""
    with security.channel(address, sec) as ch:
        try:
            pb_grpc.CoordinatorStub(ch).GetState(pb.Empty(), timeout=5)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def test_a_mutual_tls_cluster_registers_drains_both_ways_and_audits_ok(mtls_cluster):
    """Nodes dial the coordinator and the coordinator dials every node over mutual TLS."""
    h = mtls_cluster
    assert all(n.up for n in h.state().nodes)
    for strategy in (pb.STRATEGY_WORKQUEUE, pb.STRATEGY_REMOTE):
        r = h.coord.DrainAllPages(pb.DrainAllRequest(strategy=strategy, force_all_cpus=True), timeout=60)
        assert r.status == pb.DrainAllReply.DONE and sorted(c.cpu for c in r.cpus) == [0, 1], r
    assert_audit_ok(h)


def test_without_a_valid_client_certificate_nothing_connects(mtls_cluster, pki):
    """Holding the operator token is not enough: no certificate, a certificate from another CA,
    plain text, or not trusting the cluster's CA all fail (UNAVAILABLE: the handshake fails),
    at the coordinator and at a node alike; a certificate from the cluster's CA works."""
    ca, _, client, rogue, intruder = pki
    h = mtls_cluster
    op = h.cluster.security
    with_tls = lambda tls: dataclasses.replace(op, tls=tls)  # noqa: E731
    good = with_tls(security.load_tls(client.cert, client.key, ca.path, False))
    bad = {
        "no certificate": with_tls(security.load_tls(None, None, ca.path, False)),
        "another CA's certificate": with_tls(security.load_tls(intruder.cert, intruder.key, ca.path, False)),
        "plain text": with_tls(None),
        "the server not trusted": with_tls(security.load_tls(client.cert, client.key, rogue.path, False)),
    }
    for address in (h.cluster.coordinator_address, h.addresses[0]):
        for what, sec in bad.items():
            assert code(address, sec) == grpc.StatusCode.UNAVAILABLE, (address, what)
    assert code(h.cluster.coordinator_address, good) == grpc.StatusCode.OK
    with security.channel(h.addresses[0], good) as ch:
        assert pb_grpc.NodeStub(ch).GetPcp(pb.CpuRequest(cpu=0), timeout=RPC_TIMEOUT).cpu == 0


def test_the_cli_finds_the_token_and_tls_settings_in_the_state_file(mtls_cluster, tmp_path):
    """`pcpsim audit --state` dials with the operator token and the TLS files the state file
    names. Given a node's token file it refuses before dialling (the file has no operator
    secret); given the node's secret as its own, the coordinator refuses it (exit 2,
    PERMISSION_DENIED)."""
    h = mtls_cluster
    state = h.cluster.state_file
    ok = run_cli("audit", "--state", state)
    assert ok.returncode == 0, ok.stderr
    assert "audit ok" in ok.stdout
    local = run_cli("audit", "--state", state, "--token-file", h.cluster.token_files["node-cpu0"])
    assert local.returncode == 2 and "has no operator secret" in local.stderr
    node_secret = security.load_token_file(h.cluster.token_files["node-cpu0"], security.NODE).token
    stolen = tmp_path / "stolen.token"
    stolen.write_text(f"operator={node_secret}\n")
    stolen.chmod(0o600)
    denied = run_cli("audit", "--state", state, "--token-file", str(stolen))
    assert denied.returncode == 2 and "PERMISSION_DENIED" in denied.stderr
    for secret_file in h.cluster.token_files.values():
        for line in open(secret_file).read().splitlines():
            assert line.split("=", 1)[1] not in ok.stdout + ok.stderr + local.stderr + denied.stdout + denied.stderr


def test_the_health_probe_speaks_tls_with_the_containers_certificates(mtls_cluster, pki):
    """`python -m node.shared.health_probe` (the image's HEALTHCHECK) reaches a mutual-TLS process with
    the PCPSIM_TLS_* files (as flags here), without a token; without them it cannot."""
    from node.shared import health_probe

    ca, _, client, _, _ = pki
    address = mtls_cluster.cluster.coordinator_address
    assert health_probe.main([address, "--tls-ca", ca.path, "--tls-cert", client.cert, "--tls-key", client.key]) == 0
    assert health_probe.main([address, "--tls-ca", ca.path]) == 1  # no client certificate
    assert health_probe.main([address]) == 1


def test_tls_without_client_auth_admits_a_client_that_trusts_the_ca(pki, tmp_path):
    """Server-only TLS: a client with no certificate connects if it trusts the CA (and holds a
    token); plain text still fails."""
    ca, server, _, _, _ = pki
    config = ClusterConfig(roles=["idle"], tls=TlsPaths(server.cert, server.key, ca.path))
    with LocalCluster(config, str(tmp_path)) as cluster:
        op = cluster.security
        assert (
            code(
                cluster.coordinator_address, dataclasses.replace(op, tls=security.load_tls(None, None, ca.path, False))
            )
            == grpc.StatusCode.OK
        )
        assert code(cluster.coordinator_address, dataclasses.replace(op, tls=None)) == grpc.StatusCode.UNAVAILABLE
