"""generate_token_files writes every secret into a new private file: not into a file already at
its path (which keeps its mode) and not through a symlink there (which sends the secret wherever
it points). `cluster up --run-dir` reused, or `pcpsim tokens` into a directory holding files."""

import os
import stat

from node.shared import security


def test_a_fresh_secret_never_lands_in_an_old_readable_file(tmp_path):
    directory = tmp_path / "secrets"
    directory.mkdir()
    old = directory / "operator.token"
    old.write_text("operator=an-old-secret-of-some-length\n")
    os.chmod(old, 0o644)
    paths = security.generate_token_files(str(directory), nr_cpus=1)
    assert stat.S_IMODE(os.stat(paths["operator"]).st_mode) == 0o600
    assert security.load_token_file(paths["operator"], security.OPERATOR).token  # not refused as world-readable


def test_a_symlink_at_a_token_path_is_replaced_not_written_through(tmp_path):
    directory = tmp_path / "secrets"
    directory.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    os.chmod(elsewhere, 0o644)
    os.symlink(elsewhere, directory / "coordinator.token")
    paths = security.generate_token_files(str(directory), nr_cpus=1)
    assert elsewhere.read_text() == ""
    assert not os.path.islink(paths["coordinator"])
    assert stat.S_IMODE(os.lstat(paths["coordinator"]).st_mode) == 0o600
    assert sorted(os.listdir(directory)) == sorted(os.path.basename(p) for p in paths.values())
