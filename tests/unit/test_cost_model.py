"""The cost model: its defaults reproduce the published measurements they come from, a cost model
file sets any field or is refused whole naming the key, and every command that builds a cost
model reads the file (the coordinator, the node, and the processes `cluster up` and `compare`
start)."""

import inspect
import math
import os

import pytest

from coordinator.__main__ import parse_args as coordinator_args
from coordinator.tools.cli import build_parser
from coordinator.tools.cluster import ClusterConfig, LocalCluster
from coordinator.tools.compare_plan import CompareConfig
from coordinator.zone_service import DRAIN, ZoneService
from node.__main__ import parse_args as node_args
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.zone import Zone
from node.shared.timebase import TIME_SCALE, CostModel, CostModelError, load_cost_model
from node.tasks import NOISE_THRESHOLD_US, LatencyTask

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "node", "costs", "sapphire-rapids.toml")

# Commit 52166607ecc9 ("mm: restrict the pcp batch scale factor to avoid too long latency"),
# Sapphire Rapids server: average time of the zone->lock section per batch, in us.
FREE_US = {63: 2.33, 1023: 30.25, 2047: 59.39}  # free_pcppages_bulk
ALLOC_US = {63: 2.67, 1023: 25.36, 2047: 45.22}  # rmqueue_bulk


def _charged_us(pages: int) -> tuple[float, float]:
    """Kernel us the zone service holds zone->lock for, to refill `pages` pages and then to free
    them back: the sleeps its rmqueue and free_pages request, in the default cost model."""
    sleeps: list[float] = []
    zs = ZoneService(Zone(0, 1 << 16, 2), CostModel(), sleep=sleeps.append)
    reply = zs.rmqueue(0, 0, MIGRATE_MOVABLE, pages, "refill", "i0")
    assert len(reply.pfns) == pages
    zs.free_pages(0, [(pfn, 0, MIGRATE_MOVABLE) for pfn in reply.pfns], "drain", "i0", DRAIN)
    zs.close()
    assert len(sleeps) == 2
    return zs.cost.kernel_us(sleeps[0]), zs.cost.kernel_us(sleeps[1])


@pytest.mark.parametrize("pages", sorted(FREE_US))
def test_the_modeled_free_and_refill_of_a_batch_are_within_15_percent_of_the_published_figures(pages):
    """Freeing 63, 1,023 and 2,047 pages through the zone service (the path a drain takes) holds
    zone->lock within ±15 % of Huang Ying's Sapphire Rapids averages, and so does refilling them."""
    alloc_us, free_us = _charged_us(pages)
    assert free_us == pytest.approx(FREE_US[pages], rel=0.15)
    assert alloc_us == pytest.approx(ALLOC_US[pages], rel=0.15)


def test_the_example_file_is_the_defaults():
    """node/costs/sapphire-rapids.toml, the defaults' source, sets every field to its default."""
    with open(EXAMPLE, "rb") as f:
        text = f.read().decode()
    model = load_cost_model(EXAMPLE)
    assert model == CostModel()
    assert all(f"\n{name} = " in text for name in vars(model))


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "costs.toml"
    path.write_text(text)
    return str(path)


def test_a_file_sets_the_fields_it_names_and_leaves_the_others_at_their_defaults(tmp_path):
    model = load_cost_model(_write(tmp_path, "workqueue_dispatch_us = 50\nirq_us = 2.5\n"))
    assert model == CostModel(workqueue_dispatch_us=50.0, irq_us=2.5)
    assert isinstance(model.workqueue_dispatch_us, float)


@pytest.mark.parametrize(
    "text, named",
    [
        ("buddy_page_ns = 30\n", "unknown key 'buddy_page_ns'"),
        ('irq_us = "4"\n', "irq_us must be a number, got str"),
        ("irq_us = true\n", "irq_us must be a number, got bool"),
        ("irq_us = [4]\n", "irq_us must be a number, got list"),
        ("[irq_us]\nvalue = 4\n", "irq_us must be a number, got dict"),
        ("zone_lock_us = -0.5\n", "zone_lock_us must be a finite number >= 0, got -0.5"),
        ("buddy_page_us = nan\n", "buddy_page_us must be a finite number >= 0, got nan"),
        ("buddy_page_us = inf\n", "buddy_page_us must be a finite number >= 0, got inf"),
        ("time_scale = 0\n", "time_scale must be a finite number > 0, got 0"),
        # Finite but absurd: before 2026-12-06 a started node died of it (OverflowError in int()).
        ("data_slice_kib = 1e308\n", "data_slice_kib must be at most 1.07374e+09, got 1e+308"),
        ("irq_us = 2e6\n", "irq_us must be at most 1e+06, got 2e+06"),
        ("time_scale = 1e7\n", "time_scale must be at most 1e+06, got 1e+07"),
        ("irq_us = 4\nirq_us = 5\n", "not TOML"),
        ("irq_us: 4\n", "not TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path, text, named):
    path = _write(tmp_path, text)
    with pytest.raises(CostModelError) as err:
        load_cost_model(path)
    assert path in str(err.value) and named in str(err.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CostModelError, match="No such file"):
        load_cost_model(str(tmp_path / "nope.toml"))


def test_the_coordinator_builds_its_cost_model_from_the_file_and_its_time_scale_flag_wins(tmp_path):
    path = _write(tmp_path, "time_scale = 100\nbuddy_page_us = 0.05\n")
    args = coordinator_args(["--nodes", "2", "--cost-model", path], environ={})
    assert args.cost == CostModel(time_scale=100.0, buddy_page_us=0.05) and args.time_scale == 100.0
    args = coordinator_args(["--nodes", "2"], environ={"PCPSIM_COST_MODEL": path, "PCPSIM_TIME_SCALE": "10"})
    assert args.cost == CostModel(time_scale=10.0, buddy_page_us=0.05) and args.time_scale == 10.0
    assert coordinator_args(["--nodes", "2"], environ={}).cost == CostModel()


NODE_ARGV = ["--cpu", "0", "--coordinator", "127.0.0.1:1"]


def test_the_node_and_the_coordinator_refuse_a_bad_file_naming_it_and_the_key(tmp_path, capsys):
    path = _write(tmp_path, "irq_us = -1\n")
    for parse, argv in ((coordinator_args, ["--nodes", "2"]), (node_args, NODE_ARGV)):
        with pytest.raises(SystemExit) as exit_:
            parse([*argv, "--cost-model", path], environ={})
        assert exit_.value.code == 2
        assert f"{path}: irq_us must be a finite number >= 0, got -1" in capsys.readouterr().err
    assert node_args([*NODE_ARGV, "--cost-model", EXAMPLE], environ={}).cost_model == CostModel()
    good = _write(tmp_path, "irq_us = 9\n")  # the example holds the defaults: this one shows the file is read
    assert node_args([*NODE_ARGV, "--cost-model", good], environ={}).cost_model == CostModel(irq_us=9.0)


def test_pcpsim_refuses_a_bad_file_before_starting_anything(tmp_path, capsys):
    path = _write(tmp_path, "irq_us = nan\n")
    for argv in (["cluster", "up"], ["compare"]):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*argv, "--cost-model", path])
        assert exit_.value.code == 2 and "irq_us must be a finite number" in capsys.readouterr().err
    args = build_parser().parse_args(["compare", "--cost-model", os.path.relpath(EXAMPLE)])
    assert args.cost_model == os.path.abspath(EXAMPLE)


def test_compare_refuses_a_file_that_changes_the_time_scale(tmp_path):
    """compare converts wall time to kernel time at TIME_SCALE: a file with another is refused."""
    path = _write(tmp_path, "time_scale = 100\n")
    with pytest.raises(ValueError, match=r"sets time_scale 100.*default time scale \(250\)"):
        CompareConfig(cost_model=path)
    CompareConfig(cost_model=_write(tmp_path, f"time_scale = {TIME_SCALE}\nirq_us = 1\n"))


def test_a_local_cluster_passes_the_file_to_the_coordinator_and_every_node(tmp_path, monkeypatch):
    started = {}
    monkeypatch.setattr(LocalCluster, "_spawn", lambda self, name, argv, stdout=None: started.setdefault(name, argv))
    monkeypatch.setattr(LocalCluster, "_read_listening", lambda self, proc, deadline, name: "127.0.0.1:1")
    config = ClusterConfig(roles=["housekeeping", "isolated-rt"], cost_model=os.path.relpath(EXAMPLE))
    cluster = LocalCluster(config, str(tmp_path))
    cluster.start_coordinator(math.inf)
    for cpu in (0, 1):
        cluster.start_node(cpu)
    assert set(started) == {"coordinator", "cpu0", "cpu1"}
    for argv in started.values():
        i = argv.index("--cost-model")
        assert argv[i + 1] == os.path.abspath(EXAMPLE)


def test_a_latency_tasks_default_noise_threshold_is_the_drivers_at_the_default_time_scale():
    """node.tasks imports no timebase (a rule module: no clock), so its default is written in wall seconds
    at TIME_SCALE 250; the drivers pass CostModel.wall(NOISE_THRESHOLD_US), which this must equal."""
    default = inspect.signature(LatencyTask).parameters["noise_threshold_s"].default
    assert default == pytest.approx(CostModel().wall(NOISE_THRESHOLD_US))
