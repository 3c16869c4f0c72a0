"""Secrets for deploy/compose/secure.yaml: `python deploy/containers/secrets.py DIR`.

Writes into DIR (made 0700) the cluster's token files, as `pcpsim tokens DIR` does
(coordinator.token, node.token, operator.token: the CLI's), and a CA with one certificate,
made as the TLS tests make theirs (tests/certs.py, the `cryptography` package of the test
extra): ca.pem, and pcpsim.pem / pcpsim-key.pem, which every container serves and dials with.
The certificate names every Compose service (the addresses the processes dial), localhost
and 127.0.0.1 (the image's health check and the CLI on the host dial 127.0.0.1).

The containers run as uid 10001 and a process refuses a token file every user can read, so
the files a container reads are made its own (when run as root; otherwise run
`chown 10001 DIR/coordinator.token DIR/node.token DIR/pcpsim-key.pem` with sudo). The
operator's token stays the caller's. Run from the repository root, with the project installed.
"""

import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.certs import Ca  # noqa: E402

SERVICES = ("coordinator", "node0", "node1", "node2", "node3")
CONTAINER_UID = 10001
CONTAINER_FILES = ("coordinator.token", "node.token", "pcpsim-key.pem")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = os.path.abspath(argv[0])
    os.makedirs(out, mode=0o700, exist_ok=True)
    pcpsim = shutil.which("pcpsim", path=os.path.dirname(sys.executable)) or "pcpsim"
    subprocess.run([pcpsim, "tokens", out], check=True)
    ca = Ca(os.path.join(out, "ca"), "pcpsim-compose-ca")
    issued = ca.issue("pcpsim", hosts=(*SERVICES, "localhost"), ips=("127.0.0.1",))
    shutil.move(ca.path, os.path.join(out, "ca.pem"))
    shutil.move(issued.cert, os.path.join(out, "pcpsim.pem"))
    shutil.move(issued.key, os.path.join(out, "pcpsim-key.pem"))
    os.rmdir(ca.directory)
    for name in ("ca.pem", "pcpsim.pem"):
        os.chmod(os.path.join(out, name), 0o644)  # public
    # The directory is mounted into the containers: they must be able to enter it.
    os.chmod(out, 0o711)
    if os.geteuid() == 0:
        for name in CONTAINER_FILES:
            os.chown(os.path.join(out, name), CONTAINER_UID, CONTAINER_UID)
    print(f"secrets for deploy/compose/secure.yaml in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
