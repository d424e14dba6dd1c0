"""Scenario config: the minimal file validates as written; every error names file + field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import (
    ClosedLoad,
    OpenLoad,
    load_scenario,
    parse_duration,
    validate_scenario,
)
from harness.errors import ConfigError
from tests.ports import kernel_picked_port

PORT = kernel_picked_port()  # only ever parsed, never bound

MINIMAL = f"""\
name: steady-digits
target: {{url: "http://127.0.0.1:{PORT}", protocol: kserve-http, model: digits}}
load: {{mode: open, arrival: poisson, rate: 200, duration: 30s}}
slo: {{p99_ms: 100, error_rate: 0.01}}
"""


@pytest.fixture
def write(tmp_path: Path):
    def _write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


def load(path: Path, *overrides: str, env: dict[str, str] | None = None):
    return load_scenario(path, overrides, env=env or {})


def error_of(path: Path, *overrides: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, *overrides, env=env)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_minimal_scenario_validates_as_written(write):
    scenario = load(write(MINIMAL))
    assert scenario.name == "steady-digits"
    assert isinstance(scenario.load, OpenLoad)
    assert scenario.load.arrival == "poisson"
    assert scenario.load.rate == 200.0
    assert scenario.total_duration_s() == 30.0
    assert scenario.slo.p99_ms == 100 and scenario.slo.error_rate == 0.01
    assert scenario.stack is None and scenario.workers == 1
    assert scenario.validity.stability.windows == 3
    assert scenario.validity.stability.window_s == 5.0
    assert scenario.endpoints()[0].name == "digits"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rate: 200", "rate: -5", "load.rate: must be > 0"),
        ("rate: 200", "rat: 200", "load.rat: unknown key"),
        ("rate: 200", "rate: fast", "load.rate: Input should be a valid number"),
        ("duration: 30s", "duration: 30 parsecs", "load.duration: '30 parsecs' is not a duration"),
        ("duration: 30s", "duration: 0s", "load.duration: must be a positive duration"),
        ("mode: open", "mode: half", "load.mode: must be 'open', 'closed'"),
        ("protocol: kserve-http", "protocol: soap", "target.protocol: must be"),
        ("127.0.0.1", "example.com", "target.url: host 'example.com' is not loopback"),
        ("p99_ms: 100", "p99_ms: 100, p98_ms: 3", "slo.p98_ms: unknown key"),
        ("slo:", "loadgen: {max_cpu: 50}\nslo:", "loadgen.max_cpu: unknown key"),
        (
            "slo:",
            "loadgen: {max_cpu_percent: 150}\nslo:",
            "loadgen.max_cpu_percent: must be <= 100",
        ),
        ("slo:", "loadgen: {drain: soon}\nslo:", "loadgen.drain: 'soon' is not a duration"),
    ],
)
def test_errors_name_file_and_field(write, old, new, expected):
    path = write(MINIMAL.replace(old, new))
    assert expected in error_of(path)


def test_unknown_top_level_key(write):
    assert ": colour: unknown key" in error_of(write(MINIMAL + "colour: blue\n"))


def test_yaml_syntax_error_names_line(write):
    message = error_of(write(MINIMAL.replace("model: digits}", "model: digits}: x")))
    assert "line 2" in message and "YAML syntax error" in message


def test_missing_file_and_non_mapping(tmp_path, write):
    assert "cannot read" in error_of(tmp_path / "nope.yaml")
    assert "must be a mapping" in error_of(write("- a\n- b\n"))


def test_allow_hosts_opts_in_to_a_remote_target(write):
    text = MINIMAL.replace("127.0.0.1", "10.1.2.3").replace(
        "model: digits}", "model: digits, allow_hosts: [10.1.2.3]}"
    )
    assert load(write(text)).target.url == f"http://10.1.2.3:{PORT}"
    for host in ("localhost", "[::1]", "127.0.0.2"):
        assert load(write(MINIMAL.replace("127.0.0.1", host)))


def test_grpc_url_without_scheme(write):
    text = MINIMAL.replace(
        f'"http://127.0.0.1:{PORT}", protocol: kserve-http',
        f"127.0.0.1:{PORT}, protocol: kserve-grpc",
    )
    assert load(write(text)).target.protocol == "kserve-grpc"


def test_override_precedence_set_over_env_over_file(write):
    path = write(MINIMAL)
    env = {"HARNESS_SCENARIO__LOAD__RATE": "250", "HARNESS_SCENARIO__WORKERS": "2"}
    assert load(path).load.rate == 200  # file
    from_env = load(path, env=env)
    assert from_env.load.rate == 250 and from_env.workers == 2  # env over file
    both = load(path, "load.rate=300", env=env)
    assert both.load.rate == 300 and both.workers == 2  # --set over env
    assert load(path, "load.rate=1", "load.rate=7").load.rate == 7  # later --set wins


def test_override_defaults_and_types(write):
    path = write(MINIMAL)
    scenario = load(path, "validity.stability.windows=4", "stack.local=true", "stack.replicas=2")
    assert scenario.validity.stability.windows == 4  # default replaced
    assert scenario.stack is not None and scenario.stack.replicas == 2
    assert "load.rate: must be > 0" in error_of(path, "load.rate=0")
    assert "load.ratee: unknown key" in error_of(path, "load.ratee=5")
    assert "not a mapping" in error_of(path, "name.x=1")
    assert "key.sub=value" in error_of(path, "load.rate")


def test_env_is_read_from_os_environ_by_default(write, monkeypatch):
    monkeypatch.setenv("HARNESS_SCENARIO__LOAD__RATE", "123")
    assert load_scenario(write(MINIMAL)).load.rate == 123


def test_closed_loop_and_split(write):
    text = MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}",
        "{mode: closed, users: 8, spawn_rate: 4, wait_time: [0.01, 0.02], duration: 1m}",
    )
    text += "split:\n  - {model: digits, version: 1, weight: 90}\n"
    text += "  - {model: digits, version: 2, weight: 10}\n"
    scenario = load(write(text))
    assert isinstance(scenario.load, ClosedLoad)
    assert scenario.load.wait_time == (0.01, 0.02)
    assert scenario.total_duration_s() == 60
    assert scenario.users_at(0) == 8 and scenario.users_at(60) is None
    arms = {e.name: e.weight for e in scenario.endpoints()}
    assert arms == pytest.approx({"digits/1": 0.9, "digits/2": 0.1})
    bad = text.replace("[0.01, 0.02]", "[0.02, 0.01]")
    assert "load.wait_time:" in error_of(write(bad))


def test_stages_shape_is_a_pure_function_of_time(write):
    text = MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}",
        "{mode: open, stages: [{duration: 10s, rate: 100, ramp: true},"
        " {duration: 20s, rate: 100}, {duration: 5s, rate: 400}]}",
    )
    scenario = load(write(text))
    assert scenario.total_duration_s() == 35
    assert scenario.rate_at(0) == 0 and scenario.rate_at(5) == pytest.approx(50)
    assert scenario.rate_at(10) == 100 and scenario.rate_at(31) == 400
    assert scenario.rate_at(35) is None and scenario.rate_at(-1) is None
    both = text.replace("{mode: open,", "{mode: open, rate: 5,")
    assert "load: open load needs either a rate" in error_of(write(both))


def test_trace_arrival_needs_trace(write):
    text = MINIMAL.replace("arrival: poisson, rate: 200", "arrival: trace")
    assert "trace" in error_of(write(text))
    ok = text.replace("arrival: trace", "arrival: trace, trace: {path: t.csv, speedup: 10}")
    scenario = load(write(ok))
    assert scenario.load.trace is not None and scenario.load.trace.speedup == 10
    assert scenario.total_duration_s() == 30
    whole = load(write(ok.replace(", duration: 30s", "")))
    assert whole.load.duration is None
    with pytest.raises(ValueError, match="trace"):
        whole.total_duration_s()


def test_resolved_dict_round_trips(write):
    text = MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}",
        "{mode: closed, stages: [{duration: 1m, users: 4, ramp: true}, {duration: 2m, users: 4}],"
        " wait_time: [0.1, 0.2], warmup: 10s}",
    )
    text += "stack: {replicas: 2}\nsplit: [{model: digits, version: 1, weight: 3}]\n"
    scenario = load(write(text))
    dumped = scenario.model_dump(mode="json")
    assert dumped["load"]["stages"][0]["duration"] == 60.0
    assert validate_scenario(dumped) == scenario


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h", 3600), ("1m30s", 90), ("250ms", 0.25), (5, 5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_validate_scenario_from_mapping():
    with pytest.raises(ConfigError, match=r"^<cli>: target: required field is missing"):
        validate_scenario(
            {"name": "x", "load": {"mode": "open", "rate": 1, "duration": 1}}, "<cli>"
        )


def test_override_into_a_list_item(write):
    text = MINIMAL + "split: [{model: digits, version: 1, weight: 90},"
    text += " {model: digits, version: 2, weight: 10}]\n"
    scenario = load(write(text), "split.1.weight=30", "split.1.version=3")
    assert {e.name: round(e.weight, 3) for e in scenario.endpoints()} == {
        "digits/1": 0.75, "digits/3": 0.25,
    }  # fmt: skip
    assert "past the list end" in error_of(write(text), "split.5.weight=1")


# The whole message, not a fragment: a user reads exactly this line (mutation testing showed
# fragments let wrong bounds, lost "got ..." parts and wrong line/column numbers through).
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rate: 200", "rate: 200, max_outstanding: 0", "load.max_outstanding: must be >= 1"),
        ("slo:", "validity: {stability: {tolerance: 1.5}}\nslo:",
         "validity.stability.tolerance: must be < 1"),
        ("slo:", "validity: {stability: {tolerance: 0}}\nslo:",
         "validity.stability.tolerance: must be > 0"),
        ("error_rate: 0.01", "error_rate: 1.5", "slo.error_rate: must be <= 1"),
        # a float bound prints as 10, not 10.0
        ("rate: 200", "rate: 200, timer_slack_ms: 10.5", "load.timer_slack_ms: must be <= 10"),
        ("arrival: poisson", "arrival: burst",
         "load.arrival: must be 'constant', 'poisson' or 'trace'"),
        ("mode: open", "mode: half", "load.mode: must be 'open', 'closed', got 'half'"),
        ("mode: open, ", "", "load.mode: required: open or closed"),
        ("rate: 200", "rate: [1]", "load.rate: Input should be a valid number (got [1])"),
        ("slo:", "workers: many\nslo:",
         "workers: Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_error_messages_are_exact(write, old, new, expected):
    path = write(MINIMAL.replace(old, new))
    assert error_of(path) == f"{path}: {expected}"


def test_yaml_syntax_error_names_line_and_column(write):
    # line 2 ends in `model: digits}` + `: x`: the stray mapping value starts after the brace
    text = MINIMAL.replace("model: digits}", "model: digits}: x")
    column = text.splitlines()[1].index("}: x") + 2
    path = write(text)
    assert error_of(path) == (
        f"{path}: line 2, column {column}: YAML syntax error: mapping values are not allowed here"
    )
    unclosed = write("a: [1\n", "unclosed.yaml")
    assert error_of(unclosed) == (
        f"{unclosed}: line 2, column 1: YAML syntax error: expected ',' or ']', but got "
        "'<stream end>'"
    )


def test_a_yaml_error_without_a_position_is_one_line(write):
    path = write("a: 1\nb: \x00\n")  # the reader refuses a NUL before any parsing
    assert error_of(path) == (
        f"{path}: YAML syntax error: unacceptable character #x0000: special characters are "
        "not allowed"
    )


@pytest.mark.parametrize(("text", "kind"), [("", "empty"), ("- a\n", "list"), ("42\n", "int")])
def test_a_file_that_is_not_a_mapping_says_what_it_is(write, text, kind):
    path = write(text)
    assert error_of(path) == f"{path}: a scenario must be a mapping of keys, got {kind}"


def test_unreadable_file_says_why(tmp_path):
    path = tmp_path / "nope.yaml"
    assert error_of(path) == f"{path}: cannot read scenario file (No such file or directory)"


def test_override_parsing_edges():
    from harness.config.overrides import apply_overrides, env_overrides, parse_override

    # only the first "=" separates key and value: URLs with queries survive
    assert parse_override("target.url=http://127.0.0.1:9/x?a=b") == (
        ["target", "url"], "http://127.0.0.1:9/x?a=b",
    )  # fmt: skip
    assert parse_override("name=") == (["name"], "")  # empty value is an empty string
    assert parse_override("split.0.weight=3") == (["split", 0, "weight"], 3)
    assert env_overrides({"HARNESS_SCENARIO__": "5", "OTHER": "1"}) == []  # prefix alone

    source = {"load": {"rate": 1.0}, "split": [{"weight": 1}]}
    applied = apply_overrides(source, ["load.rate=2", "split.0.weight=7", "split.1.weight=9"])
    assert applied == {"load": {"rate": 2}, "split": [{"weight": 7}, {"weight": 9}]}
    assert source == {"load": {"rate": 1.0}, "split": [{"weight": 1}]}  # input untouched
    # a path through a missing list is created as a list; the last index sets the value
    assert apply_overrides({}, ["stages.0.rate=5"]) == {"stages": [{"rate": 5}]}
    assert apply_overrides({"tags": ["a"]}, ["tags.1=b", "tags.0=z"]) == {"tags": ["z", "b"]}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("load..rate=1", "override 'load..rate=1' has an empty key segment"),
        ("load.rate", "override 'load.rate' must look like key.sub=value"),
        ("name.x=1", "override 'name.x=1': name is not a mapping"),
        ("split.5.weight=1", "override 'split.5.weight=1': index 5 is past the list end"),
        ("load.rate=[1", "override 'load.rate=[1': value is not valid YAML at column 3: "
         "expected ',' or ']', but got '<stream end>'"),
        ("split.weight=1", "override 'split.weight=1': split is not a mapping"),
    ],
)
def test_override_errors_are_exact(write, override, expected):
    text = MINIMAL + "split: [{model: digits, version: 1, weight: 90}]\n"
    path = write(text)
    assert error_of(path, override) == f"{path}: {expected}"


def test_bad_duration_says_what_a_duration_looks_like():
    with pytest.raises(ValueError, match=r"^'x30s' is not a duration \(use e.g. 30s"):
        parse_duration("x30s")  # text before the first number-and-unit
    with pytest.raises(ValueError, match=r"^must be a duration such as 30s, 2m or 1h$"):
        parse_duration(True)
    with pytest.raises(ValueError, match=r"^must be a duration such as 30s, 2m or 1h$"):
        parse_duration([30])


def test_a_ramp_starts_from_the_previous_stage_level():
    from harness.config.shapes import Level, level_at

    # 10 s at 100, then a 20 s ramp to 400: at t = 15 s a sixth of the way, 100 + 300 / 4
    stages = [Level(10.0, 100.0), Level(20.0, 400.0, ramp=True)]
    assert level_at(stages, 15.0) == pytest.approx(175.0)
    assert level_at(stages, 29.0) == pytest.approx(100.0 + 300.0 * 19.0 / 20.0)
    assert level_at(stages, 30.0) is None
    # and down again: a ramp from 400 to 0 halfway is 200
    down = [*stages, Level(10.0, 0.0, ramp=True)]
    assert level_at(down, 35.0) == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        ("{mode: open, rate: 5}", "load: needs a duration (e.g. duration: 30s) or stages"),
        ("{mode: open, stages: [{duration: 5s, rate: 1}, {duration: 5s}]}",
         "load: stages [1] need a rate value"),
        ("{mode: open, duration: 12s, stages: [{duration: 5s, rate: 1}, {duration: 5s, rate: 2}]}",
         "load: duration 12s differs from the stages' 10s"),
        ("{mode: closed, stages: [{duration: 5s}, {duration: 5s, users: 2}]}",
         "load: stages [0] need a users value"),
    ],
)
def test_stage_errors_are_exact(write, load, expected):
    path = write(MINIMAL.replace("{mode: open, arrival: poisson, rate: 200, duration: 30s}", load))
    assert error_of(path) == f"{path}: {expected}"


def test_matching_duration_and_stages_are_accepted(write):
    load_text = (
        "{mode: open, duration: 10s, stages: [{duration: 4s, rate: 1}, {duration: 6s, rate: 2}]}"
    )
    scenario = load(write(MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}", load_text)))
    assert scenario.total_duration_s() == 10 and scenario.rate_at(5) == 2


def test_levels_need_the_right_kind_of_load(write):
    open_scenario = load(write(MINIMAL))
    assert open_scenario.rate_at(29.9) == 200 and open_scenario.rate_at(30) is None
    with pytest.raises(TypeError, match=r"^users_at needs a closed load$"):
        open_scenario.users_at(1)
    trace = MINIMAL.replace("arrival: poisson, rate: 200", "arrival: trace, trace: {path: t.csv}")
    with pytest.raises(TypeError, match=r"^rate_at needs an open load with constant/poisson"):
        load(write(trace)).rate_at(1)
    closed = load(write(MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}",
        "{mode: closed, stages: [{duration: 10s, users: 4, ramp: true}]}")))
    assert closed.users_at(5) == 2
    with pytest.raises(TypeError, match=r"^rate_at needs an open load"):
        closed.rate_at(1)


def test_a_pinned_target_version_is_the_single_endpoint(write):
    scenario = load(write(MINIMAL.replace("model: digits}", "model: digits, version: '2'}")))
    (endpoint,) = scenario.endpoints()
    assert (endpoint.name, endpoint.model, endpoint.version, endpoint.weight) == (
        "digits/2", "digits", "2", 1.0,
    )  # fmt: skip
    text = MINIMAL + "split: [{model: digits, version: 1, weight: 1}, {model: mlp, weight: 3}]\n"
    arms = load(write(text)).endpoints()
    assert [(a.name, a.model, a.version, a.weight) for a in arms] == [
        ("digits/1", "digits", "1", 0.25), ("mlp", "mlp", None, 0.75),
    ]  # fmt: skip


def test_load_kinds_answer_for_themselves(write):
    open_load = load(write(MINIMAL)).load
    assert open_load.level() == 200 and not open_load.is_trace()
    held = open_load.held_at(50, 12.0)
    assert (held.rate, held.duration, held.stages, held.arrival) == (50.0, 12.0, (), "poisson")
    closed_text = MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}",
        "{mode: closed, stages: [{duration: 10s, users: 4, ramp: true}], spawn_rate: 2}",
    )
    closed = load(write(closed_text)).load
    assert closed.level() is None  # stages set it
    held_closed = closed.held_at(8, 5.0)
    # all 8 users start at once: the spawn rate is raised to the level
    assert (held_closed.users, held_closed.spawn_rate, held_closed.stages) == (8, 8.0, ())
    assert closed.held_at(1, 5.0).spawn_rate == 2.0  # never lowered
    trace = MINIMAL.replace("arrival: poisson, rate: 200", "arrival: trace, trace: {path: t.csv}")
    trace_load = load(write(trace)).load
    assert trace_load.is_trace() and trace_load.level() is None
    with pytest.raises(ValueError, match=r"^a trace replay cannot be held at a rate$"):
        trace_load.held_at(10, 5.0)


def test_duration_and_stages_must_agree_to_the_millisecond(write):
    load_text = (
        "{mode: open, duration: 10.5s, stages: [{duration: 4s, rate: 1}, {duration: 6s, rate: 2}]}"
    )
    path = write(MINIMAL.replace("{mode: open, arrival: poisson, rate: 200, duration: 30s}",
                                 load_text))
    assert error_of(path) == f"{path}: load: duration 10.5s differs from the stages' 10s"


def test_a_flat_closed_load_reports_its_users_as_level(write):
    closed = MINIMAL.replace(
        "{mode: open, arrival: poisson, rate: 200, duration: 30s}",
        "{mode: closed, users: 8, duration: 10s}",
    )
    assert load(write(closed)).load.level() == 8.0
