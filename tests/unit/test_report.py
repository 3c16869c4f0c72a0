"""`pcpsim report`: the raw per-CPU data compare keeps, and the oslat/cyclictest/osnoise views of it."""

import hashlib
import itertools
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from coordinator.tools import cli, compare_results, plots, report, results_file, schedule
from node.api.v1 import pcpsim_pb2 as pb

SCALE = 250.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def wall(kernel_us: float) -> float:
    """Wall seconds that `kernel_us` of kernel time lasts at SCALE."""
    return kernel_us * 1e-6 * SCALE


def cpu(
    role="isolated-preemptible",
    kind="preemptible",
    period_s=0.010,
    hist=None,
    lat_us=(0.5, 1.5, 40.5, 2.0),
    runs=10,
    stolen=None,
    events=None,
    max_single_us=30.0,
) -> dict:
    """One `phases.<phase>.cpus.<cpu>` record: min/avg/max/last from `lat_us` (kernel us)."""
    return {
        "role": role,
        "kind": kind,
        "period_s": period_s,
        "wake_latency_hist_kernel_us": hist if hist is not None else {"0": 5, "1": 3, "40": 2},
        "wake_latency_min_s": wall(lat_us[0]),
        "wake_latency_avg_s": wall(lat_us[1]),
        "wake_latency_max_s": wall(lat_us[2]),
        "wake_latency_last_s": wall(lat_us[3]),
        "wake_latency_p50_s": wall(lat_us[1]),
        "wake_latency_p99_s": wall(lat_us[2]),
        "runs": runs,
        "deadline_misses": 1,
        "stolen_s": stolen if stolen is not None else {"workqueue": wall(60.0), "irq": wall(4.0)},
        "noise_events": events if events is not None else {"workqueue": 3, "irq": 1, "pcp_lock": 2},
        "max_single_noise_s": wall(max_single_us),
        "drain_work_items": 3,
        "drain_wait_max_s": 0.0,
    }


def rt_cpu(**kw) -> dict:
    return cpu(
        role="isolated-rt",
        kind="rt",
        period_s=0.250,
        hist={"2": 4},
        lat_us=(2.2, 2.5, 2.9, 2.4),
        runs=4,
        stolen={},
        events={},
        max_single_us=0.0,
        **kw,
    )


@pytest.fixture
def result() -> dict:
    """A small results file in compare's shape: three phases, latency CPUs 2 and 3."""
    phases = {name: {"cpus": {"2": cpu(), "3": rt_cpu()}} for name in ("noise_floor", "workqueue", "remote")}
    phases["noise_floor"]["cpus"]["2"] = cpu(
        hist={"0": 9, "1": 1},
        lat_us=(0.3, 0.6, 1.2, 0.4),
        stolen={"irq": wall(4.0)},
        events={"irq": 1},
        max_single_us=4.0,
    )
    strategies = {
        "workqueue": {
            "drain_all": {"count": 3, "p50_s": 0.02, "p99_s": 0.05, "max_s": 0.05, "durations_s": [0.05, 0.01, 0.02]}
        },
        "remote": {
            "drain_all": {"count": 2, "p50_s": 0.004, "p99_s": 0.006, "max_s": 0.006, "durations_s": [0.004, 0.006]}
        },
    }
    return {
        "seed": 1,
        "time_scale": SCALE,
        "hist_bucket_kernel_us": 1,
        "phases": phases,
        "strategies": strategies,
        "noise_floor": {"wake_latency_p99_s": wall(1.2)},
    }


def block(text: str, phase: str) -> list[str]:
    """The lines of one phase's block in a report section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## phase {phase} "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## phase")), len(lines))
    return [line for line in lines[start + 1 : end] if line.strip()]


# ------------------------------------------------------------ compare's raw data
def test_wake_histogram_buckets_whole_kernel_microseconds():
    """A wake-up latency lands in bucket floor(wall / time_scale in us): 0.1 ms wall is 0.4 kernel us."""
    lat = [0.1e-3, 0.3e-3, 0.26e-3, 10.1e-3, -1e-6]
    assert compare_results.wake_histogram(lat, SCALE) == {"0": 2, "1": 2, "40": 1}


def test_summarize_phase_keeps_old_keys_and_adds_per_cpu_raw_data():
    """summarize_phase still reports every key the table reads, plus durations and one record per latency CPU."""

    def task(kind, lat, period_s, misses=None):
        return SimpleNamespace(
            kind=kind,
            period_s=period_s,
            wake_latency_s=lat,
            runs=len(lat),
            deadline_misses=sum((misses or {}).values()),
            misses_by_cause=misses or {},
            stolen_s={"workqueue": 0.01},
            noise_events={"workqueue": 1},
            max_single_noise_s=0.01,
        )

    common = dict(
        trylock_failures=0, buddy_fallbacks=0, alloc_failures=0, allocs=5, drain_wait_max_s=0.0, drain_work_items=1
    )
    stats = {
        0: SimpleNamespace(role=pb.ROLE_HOUSEKEEPING, task=None, **common),
        2: SimpleNamespace(role=pb.ROLE_ISOLATED_PREEMPTIBLE, task=task("preemptible", [1e-4, 3e-4], 0.010), **common),
        3: SimpleNamespace(role=pb.ROLE_ISOLATED_RT, task=task("rt", [5e-4], 0.250, {"none": 1, "irq": 2}), **common),
    }
    history = [
        pb.DrainAllReply(status=pb.DrainAllReply.DONE, trigger=pb.TRIGGER_DEMAND, duration_s=d) for d in (0.02, 0.01)
    ]
    audit = SimpleNamespace(ok=True, lost=0, duplicated=0, unexpected=0, errors=[])
    out = compare_results.summarize_phase(stats, history, audit, [])
    assert {"count", "p50_s", "p99_s", "max_s"} <= set(out["drain_all"])
    assert out["drain_all"]["durations_s"] == [0.02, 0.01]
    assert {"isolated_preemptible", "isolated_rt", "pcp", "audit"} <= set(out)
    assert sorted(out["cpus"]) == ["2", "3"]
    c2 = out["cpus"]["2"]
    assert c2["role"] == "isolated-preemptible" and c2["period_s"] == 0.010
    assert c2["wake_latency_hist_kernel_us"] == {"0": 1, "1": 1}
    assert c2["wake_latency_min_s"] == 1e-4 and c2["wake_latency_max_s"] == 3e-4
    assert c2["wake_latency_avg_s"] == pytest.approx(2e-4) and c2["wake_latency_last_s"] == 3e-4
    assert out["cpus"]["3"]["role"] == "isolated-rt" and out["cpus"]["3"]["period_s"] == 0.250
    assert out["cpus"]["3"]["misses_by_cause"] == {"irq": 2, "none": 1}
    assert out["isolated_rt"]["misses_by_cause"] == {"irq": 2, "none": 1}
    assert out["isolated_rt"]["deadline_misses"] == 3 and out["isolated_preemptible"]["misses_by_cause"] == {}
    results_file.validate(
        {
            "time_scale": SCALE,
            "phases": {"p": {"cpus": out["cpus"]}},
            "strategies": {"s": {"drain_all": out["drain_all"]}},
        }
    )


# ------------------------------------------------------------ oslat
def test_oslat_rows_are_dense_to_31_then_only_nonempty_buckets():
    """Rows run 0..max when the max is below 32 us; past that only non-empty buckets, a gap marked by None."""
    assert report.histogram_rows([{0: 1, 3: 2}, {1: 1}]) == [0, 1, 2, 3]
    assert report.histogram_rows([{0: 1, 40: 1}, {45: 2, 46: 1}]) == [*list(range(32)), None, 40, None, 45, 46]
    assert report.histogram_rows([{}]) == []


def test_oslat_table_columns_counts_and_min_avg_max(result):
    """Each phase block has one column per latency CPU, each bucket's count, and Min/Avg/Max in kernel us."""
    lines = block(report.oslat_table(result), "workqueue")
    assert lines[0].split() == ["Core:", "cpu2", "cpu3"]
    rows = {line.split("(us):")[0].strip(): line.split("(us):")[1].split() for line in lines if "(us):" in line}
    assert list(rows) == [str(b) for b in range(32)] + ["40"]
    assert rows["0"] == ["5", "0"] and rows["1"] == ["3", "0"] and rows["2"] == ["0", "4"]
    assert rows["40"] == ["2", "0"]
    assert any(line.strip() == "..." for line in lines)
    stats = {line.split()[0]: line.split()[1:] for line in lines if line.split()[0].endswith(":")}
    assert stats["Minimum:"] == ["0.5", "2.2", "(us)"]
    assert stats["Average:"] == ["1.500", "2.500", "(us)"]
    assert stats["Maximum:"] == ["40.5", "2.9", "(us)"]
    assert stats["Duration:"][:2] == ["0.100", "1.000"]  # runs x period, wall seconds


def test_oslat_counts_sum_to_runs(result):
    """The histogram holds every wake-up: the counts in a column add up to the task's runs."""
    lines = block(report.oslat_table(result), "noise_floor")
    counts = [int(line.split()[2]) for line in lines if "(us):" in line]
    assert sum(counts) == result["phases"]["noise_floor"]["cpus"]["2"]["runs"]


# ------------------------------------------------------------ cyclictest
CYCLICTEST = re.compile(
    r"^T:\s*(\d+) \(\s*(\d+)\) P:\s*(\d+) I:(\d+) C:\s*(\d+) Min:\s*(\d+) Act:\s*(\d+) "
    r"Avg:\s*(\d+) Max:\s*(\d+)$"
)


def test_cyclictest_lines_match_rt_tests_format(result):
    """One `T: n (pid) P: I: C: Min: Act: Avg: Max:` line per latency CPU and phase, values in kernel us."""
    text = report.cyclictest_lines(result)
    lines = [line for line in text.splitlines() if line.startswith("T:")]
    assert len(lines) == 3 * 2
    assert all(CYCLICTEST.match(line) for line in lines), lines
    workqueue = text.split("# phase workqueue")[1].splitlines()[1:3]
    assert CYCLICTEST.match(workqueue[0]).groups() == ("0", "2", "0", "10000", "10", "0", "2", "2", "40")
    assert CYCLICTEST.match(workqueue[1]).groups() == ("1", "3", "99", "250000", "4", "2", "2", "2", "3")
    assert "kernel us" in text.splitlines()[0]


# ------------------------------------------------------------ osnoise
def test_osnoise_columns_and_cause_mapping(result):
    """rtla osnoise top's columns plus Lock; irq -> IRQ, workqueue -> Thread, pcp_lock -> Lock, HW/NMI/Softirq 0."""
    lines = block(report.osnoise_table(result), "workqueue")
    assert lines[0].split() == [
        "CPU",
        "Period",
        "Runtime",
        "Noise",
        "%",
        "CPU",
        "Aval",
        "Max",
        "Noise",
        "Max",
        "Single",
        "HW",
        "NMI",
        "IRQ",
        "Softirq",
        "Thread",
        "Lock",
    ]
    cells = lines[1].split()
    # runtime = 10 runs x 10 ms = 0.1 s wall = 400 kernel us; noise 64 us -> 84% available
    assert cells[:7] == ["2", "#10", "400", "64.0", "84.00000", "-", "30.0"]
    assert cells[7:] == ["0", "0", "1", "0", "3", "2"]
    row = report.osnoise_row(2, result["phases"]["workqueue"]["cpus"]["2"], result)
    assert row["Runtime"] == pytest.approx(400.0) and row["% CPU Aval"] == pytest.approx(84.0)


def test_osnoise_lists_causes_it_has_no_column_for(result):
    """A noise cause outside the mapping is not dropped silently: it is listed under the CPU's row."""
    result["phases"]["remote"]["cpus"]["2"]["noise_events"]["timer"] = 7
    assert "other causes on cpu2: timer 7" in report.osnoise_table(result)


# ------------------------------------------------------------ plots
def test_plots_are_png_files(result, tmp_path):
    """write_plots writes the wake-up and drain plots as non-empty PNGs named after the results file."""
    paths = plots.write_plots(result, "/elsewhere/run.json", str(tmp_path / "out"))
    assert paths == [str(tmp_path / "out" / "run-wakeup.png"), str(tmp_path / "out" / "run-drain.png")]
    for path in paths:
        data = open(path, "rb").read()
        assert len(data) > len(PNG_MAGIC) and data.startswith(PNG_MAGIC)


def test_a_large_machine_s_wake_up_plot_draws_two_cpus_of_each_task(result, tmp_path):
    """64 latency CPUs (`compare --cpus 1024`): panels for the first two of each role, not 64."""
    for phase in result["phases"].values():
        phase["cpus"] = {str(n): cpu() if n < 36 else rt_cpu() for n in range(4, 68)}
    assert plots.shown_cpus(result) == ([4, 5, 36, 37], 64)
    path = tmp_path / "w.png"
    plots.plot_wakeup(result, str(path))
    width = int.from_bytes(path.read_bytes()[16:20], "big")  # the PNG header's IHDR width
    assert 4 * 6.0 * 110 * 0.9 < width <= 4 * 6.0 * 110


def test_plot_paths_sit_next_to_the_json():
    """compare --json PATH.json puts PATH-wakeup.png and PATH-drain.png beside it."""
    assert plots.plot_paths("/r/a.json") == ("/r/a-wakeup.png", "/r/a-drain.png")


def test_cli_import_does_not_load_matplotlib():
    """`import coordinator.tools.cli` leaves matplotlib unimported (it loads only when a plot is drawn)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, coordinator.tools.cli; print('matplotlib' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------ the command
def test_report_command_prints_three_views_and_writes_plots(result, tmp_path, capsys):
    """`pcpsim report R --out DIR` prints the oslat, cyclictest and osnoise views and writes both PNGs."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert cli.main(["report", str(path), "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "Minimum:" in out and "T: 0 (    2)" in out and "% CPU Aval" in out
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["r-drain.png", "r-wakeup.png"]


def test_report_no_plots_writes_nothing(result, tmp_path):
    """--no-plots prints the tables and writes no file."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert cli.main(["report", str(path), "--no-plots"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "top level is a list"),
        (json.dumps({"seed": 1, "time_scale": 250.0, "strategies": {}}), "no 'phases'"),
        (
            json.dumps(
                {"time_scale": 250.0, "strategies": {}, "phases": {"remote": {"cpus": {"2": {"role": "isolated-rt"}}}}}
            ),
            "phases.remote.cpus.2.kind",
        ),
    ],
)
def test_report_on_a_bad_file_exits_2_with_a_clear_message(tmp_path, capsys, content, message):
    """A missing, unreadable or malformed results file gives `pcpsim: error: ...`, exit 2, and no output files."""
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    out_dir = tmp_path / "out"
    assert cli.main(["report", str(path), "--out", str(out_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("pcpsim: error: ") and message in captured.err
    assert str(path) in captured.err
    assert captured.out == "" and not out_dir.exists()


def test_drain_schedule_is_seeded_jittered_and_the_same_for_every_call():
    """The drain schedule depends only on the seed (so every strategy gets the same one),
    keeps its mean gap near the interval, and does not repeat one fixed gap."""
    a = schedule.drain_schedule(7, 0.150, 30.0)
    assert a == schedule.drain_schedule(7, 0.150, 30.0)
    assert a != schedule.drain_schedule(8, 0.150, 30.0)
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert all(0.075 <= g <= 0.225 for g in gaps)
    assert 0.135 < sum(gaps) / len(gaps) < 0.165
    assert len({round(g, 6) for g in gaps}) > len(gaps) // 2
    assert a[0] == 0.0 and a[-1] < 30.0


# ------------------------------------------------------------ the HTML page
def test_report_html_is_one_offline_page_with_every_figure(result, tmp_path, capsys):
    """`report --html OUT` writes one page that fetches nothing, with a wake-up chart per latency
    CPU (a curve per phase), the drain CDF (a curve per strategy), the stolen-time bars, the
    three views, and, this file having no drain_window, the note that no timeline is drawn."""
    path, out = tmp_path / "r.json", tmp_path / "r.html"
    path.write_text(json.dumps(result))
    assert cli.main(["report", str(path), "--no-plots", "--html", str(out)]) == 0
    assert f"page written to {out}" in capsys.readouterr().out
    html = out.read_text()
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script src" not in html and "<link" not in html
    assert html.count('<svg class="chart"') == 4
    assert len(re.findall(r'data-series="3"', html)) == 2  # cpu2 and cpu3: three phases each
    assert 'data-series="2"' in html  # the drain CDF: workqueue and remote
    assert "No per-CPU timeline of a drain window" in html
    assert "T: 0 (    2)" in html and "% CPU Aval" in html and "Minimum (us)" in html


def test_report_html_to_an_unwritable_path_exits_2_naming_it(result, tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    bad = tmp_path / "no-such-dir" / "r.html"
    assert cli.main(["report", str(path), "--no-plots", "--html", str(bad)]) == 2
    said = capsys.readouterr()
    assert f"--html {bad}: {bad.parent} is not a directory this process can write to" in said.err
    assert said.out == ""  # refused before the report is printed


def window() -> dict:
    """A drain window in compare's shape (phases.<strategy>.drain_window)."""
    return {
        "duration_s": 0.004,
        "trigger": "demand",
        "from_s": -0.02,
        "to_s": 0.024,
        "cpus_marked": [0, 2],
        "cpus": {
            "2": [
                {"lane": "task", "kind": "task", "start_s": -0.03, "end_s": 0.001},
                {"lane": "work", "kind": "workqueue", "start_s": 0.001, "end_s": 0.002},
                {"lane": "fallback", "kind": "alloc", "start_s": 0.0015, "end_s": 0.0016},
            ],
            "3": [{"lane": "lock", "kind": "committed", "start_s": 0.0005, "end_s": 0.003}],
        },
    }


def test_report_html_draws_each_strategy_s_drain_window_as_lanes_per_cpu(result, tmp_path):
    """With phases.<strategy>.drain_window (compare's), the note gives way to a timeline per
    strategy: a row per latency CPU and lane, a bar per event with its values on hover, the drain
    shaded; an event reaching past the window is cut at its edge."""
    result["phases"]["remote"]["drain_window"] = window()
    path, out = tmp_path / "r.json", tmp_path / "r.html"
    path.write_text(json.dumps(result))
    assert cli.main(["report", str(path), "--no-plots", "--html", str(out)]) == 0
    html = out.read_text()
    assert "No per-CPU timeline of a drain window" not in html
    assert html.count('<svg class="chart"') == 5
    assert "remote: one drain window per latency CPU (demand drain of median duration, 4.00 ms)" in html
    for lane in ("cpu2-task", "cpu2-work", "cpu2-fallback", "cpu3-lock"):
        assert html.count(f"lane-{lane}") == 1, lane
    assert "cpu2 work workqueue: at +1.000 ms, 1.000 ms" in html
    assert "cpu3 pcp lock held by drainer" in html and 'class="band"' in html
    # the task's activation began 30 ms before the drain: its bar starts at the window's left edge
    task_bar = re.search(r'<rect class="bar lane-cpu2-task" x="([\d.]+)"', html)
    assert task_bar and float(task_bar.group(1)) == 200.0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: w.pop("to_s"), "drain_window.to_s is missing or not a number"),
        (lambda w: w.update(from_s=1.0), "from_s 1.0 must be below to_s"),
        (lambda w: w.update(cpus_marked="0,2"), "drain_window.cpus_marked must be a list"),
        (lambda w: w["cpus"].update(x=[]), "expected a CPU number"),
        (lambda w: w["cpus"]["2"][0].update(lane="disk"), "drain_window.cpus.2[0].lane must be one of task"),
        (lambda w: w["cpus"]["3"][0].pop("end_s"), "drain_window.cpus.3[0].end_s is missing"),
    ],
)
def test_report_refuses_a_bad_drain_window_naming_the_field(result, tmp_path, capsys, change, message):
    """A drain window with a field missing, mistyped or out of place: exit 2 naming it, no page."""
    w = window()
    change(w)
    result["phases"]["remote"]["drain_window"] = w
    path, out = tmp_path / "r.json", tmp_path / "r.html"
    path.write_text(json.dumps(result))
    assert cli.main(["report", str(path), "--no-plots", "--html", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcpsim: error: ") and "phases.remote.drain_window" in err and message in err
    assert not out.exists()


# ------------------------------------------------------------ two runs side by side
def _virtual(result: dict, seed: int) -> dict:
    """`result` as a virtual run of the same kernel times would write it: time_scale 1."""
    out = json.loads(json.dumps(result))
    out.update(seed=seed, time_scale=1.0, engine="virtual", noise="model")
    for s in out["strategies"].values():
        d = s["drain_all"]
        for key in ("p50_s", "p99_s", "max_s"):
            d[key] /= SCALE
        d["durations_s"] = [x / SCALE for x in d["durations_s"]]
    out["noise_floor"]["wake_latency_p99_s"] /= SCALE
    return out


def test_against_sets_two_runs_side_by_side_in_kernel_us_and_names_what_differs(result, tmp_path, capsys):
    """A wall run and a virtual one of the same kernel times give equal cells; the strategies come in the
    order the run asked for them; what the runs were asked differently is listed, and no file is written."""
    result["config"] = {"strategies": ["workqueue", "remote"]}
    other = _virtual(result, seed=7)
    a, b = tmp_path / "wall.json", tmp_path / "virtual.json"
    a.write_text(json.dumps(result))
    b.write_text(json.dumps(other))
    assert cli.main(["report", str(a), "--against", str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"A: {a} (wall engine, kernel ?, seed 1, 0 CPUs)"
    assert "differs: engine: wall | virtual" in lines and "differs: seed: 1 | 7" in lines
    header = next(line for line in lines if line.startswith("kernel us"))
    assert header.split() == ["kernel", "us", "workqueue", "A", "workqueue", "B", "remote", "A", "remote", "B"]
    floor = next(line for line in lines if line.startswith("noise floor"))
    assert floor.split()[-2:] == ["1.2", "1.2"]
    p50 = next(line for line in lines if line.startswith("drain_all_pages p50"))
    assert p50.split()[-4:] == ["80.0", "80.0", "16.0", "16.0"]  # 20 ms and 4 ms of wall time at 250
    assert sorted(p.name for p in tmp_path.iterdir()) == ["virtual.json", "wall.json"]


def test_a_file_the_run_read_is_named_by_its_contents_not_the_hosts_path(tmp_path):
    """One seed gives the same results from any checkout: a workload or cost model is recorded by its
    name and sha256, so copies at two paths give one record, and a changed file another."""
    a, b = tmp_path / "a" / "set.json", tmp_path / "b" / "set.json"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text('{"tasks": {}}')
    assert compare_results.input_file(str(a)) == compare_results.input_file(str(b))
    digest = hashlib.sha256(b'{"tasks": {}}').hexdigest()
    assert compare_results.input_file(str(a)) == {"file": "set.json", "sha256": digest}
    b.write_text('{"tasks": {"t": {}}}')
    assert compare_results.input_file(str(a)) != compare_results.input_file(str(b))
    assert compare_results.input_file(None) is None


def test_against_names_a_differing_workload_by_file_and_digest(result, tmp_path, capsys):
    result["config"] = {"strategies": ["remote"], "workload": {"file": "set.json", "sha256": "ab" * 32}}
    other = json.loads(json.dumps(result))
    other["config"]["workload"] = {"file": "set.json", "sha256": "cd" * 32}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result))
    b.write_text(json.dumps(other))
    assert cli.main(["report", str(a), "--against", str(b)]) == 0
    want = f"differs: workload: set.json (sha256 {'ab' * 6}) | set.json (sha256 {'cd' * 6})"
    assert want in capsys.readouterr().out.splitlines()


def test_against_without_a_strategy_in_common_a_malformed_field_or_output_flags_exits_2(result, tmp_path, capsys):
    other = json.loads(json.dumps(result))
    other["strategies"] = {"rcu-swap": other["strategies"]["remote"]}
    odd = json.loads(json.dumps(result))
    odd["strategies"]["remote"]["pcp"] = {"trylock_failures": "many"}
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(result))
    b.write_text(json.dumps(other))
    c.write_text(json.dumps(odd))
    for argv, message in (
        (["report", str(a), "--against", str(b)], "no strategy in common"),
        (["report", str(a), "--against", str(c)], "strategies.remote.pcp.trylock_failures is 'many'"),
        (["report", str(a), "--against", str(a), "--html", str(tmp_path / "x.html")], "--against prints a table only"),
    ):
        assert cli.main(argv) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "c.json"]


def test_a_virtual_runs_views_name_kernel_time_not_wall_time(result):
    """Under virtual time every figure is kernel time: no view may call it wall time (it did until 2026-12-06)."""
    text = report.format_report(_virtual(result, seed=1))
    assert "ms wall" not in text and "(sec, wall)" not in text and "wall us" not in text
    assert "(sec, kernel)" in text and "virtual time: every time is kernel time" in text
    wall = report.format_report(result)
    assert "(sec, wall)" in wall and f"1 kernel us = {SCALE / 1e3:g} ms wall" in wall
