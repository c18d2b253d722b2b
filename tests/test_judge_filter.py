"""The judge filter, the batched judging core and the win-rate metrics, with fake judges and (end to end) tiny models.

Fake judges come from :mod:`lm_eval_pandalm.testing.fakes`; the filter finds them through ``judge_for_spec``, which
the tests replace, so everything below the filter (both orders, summaries, metrics) runs for real.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lm_eval_pandalm.config import ConfigError
from lm_eval_pandalm.errors import JudgeLoadError
from lm_eval_pandalm.harness import judging, winrate
from lm_eval_pandalm.harness.judge_filter import PandaLMJudgeFilter, TemplateError
from lm_eval_pandalm.harness.judging import JudgmentSummary, judge_against_baseline, summary_metrics
from lm_eval_pandalm.testing.fakes import FakeJudge, Fixed, PreferLonger
from lm_eval_pandalm.types import Label, PairItem, Verdict, VerdictState

REPO = Path(__file__).resolve().parents[1]

DOCS = [
    {"question": "Name a colour.", "context": "", "reference": "Red is a colour."},
    {"question": "Translate to French.", "context": "The cat sleeps.", "reference": "Le chat."},
    {"question": "Say hi.", "context": "", "reference": "Hello there, my good friend."},
]
# PreferLonger: longer wins. Doc 0: candidate longer (win); doc 1: candidate longer (win); doc 2: shorter (loss).
RESPONSES = [["Red, green and blue are colours."], ["Le chat dort profondément."], ["Hi."]]
FILTER_OPTIONS = {"instruction": "{{ question }}", "input": "{{ context }}", "baseline": "{{ reference }}"}


@pytest.fixture(autouse=True)
def _fresh_judges() -> Iterator[None]:
    yield
    judging.clear_judge_cache()


@pytest.fixture
def use_judges(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, FakeJudge]], None]:
    """Make the filter build the given fake judge for each SPEC (any other SPEC goes to the real registry)."""

    def install(judges: dict[str, FakeJudge]) -> None:
        real = judging.judge_for_spec
        monkeypatch.setattr(
            judging, "judge_for_spec", lambda spec, data_dir=None, cache=None: judges.get(spec) or real(spec)
        )

    return install


def _summaries(filtered: list[list[str]]) -> list[JudgmentSummary]:
    assert all(isinstance(entry, list) and len(entry) == 1 for entry in filtered)
    return [JudgmentSummary.from_json(entry[0]) for entry in filtered]


# -- judging core ------------------------------------------------------------------------------------------------


def test_both_orders_are_judged_in_one_batch() -> None:
    judge = FakeJudge(PreferLonger(position_bias=0.0))
    summaries = judge_against_baseline(
        judge,
        instructions=[d["question"] for d in DOCS],
        inputs=[d["context"] for d in DOCS],
        responses=[r[0] for r in RESPONSES],
        baselines=[d["reference"] for d in DOCS],
    )
    assert judge.calls == 1
    batch = judge.batches[0]
    assert len(batch) == 2 * len(DOCS)
    # The candidate is shown first, then second (the swapped copies follow the originals).
    assert [item.response1 for item in batch[:3]] == [r[0] for r in RESPONSES]
    assert [item.response2 for item in batch[3:]] == [r[0] for r in RESPONSES]
    assert [s.outcome for s in summaries] == ["win", "win", "loss"]
    first = summaries[0]
    assert first.state == "ok" and first.consistent is True and first.protocol == "both-orders"
    assert first.outcome_candidate_first == first.outcome_candidate_second == "win"
    assert first.p_candidate is not None and first.p_candidate > first.p_baseline  # type: ignore[operator]
    assert math.isclose(first.p_candidate + first.p_baseline + first.p_tie, 1.0)  # type: ignore[operator]
    assert first.judge == "fake" and first.response == RESPONSES[0][0]


def test_position_bias_shows_as_inconsistency_and_paper_rule_makes_it_a_tie() -> None:
    # Equal lengths and a strong bias for whatever is shown first: each order prefers its first response.
    judge = FakeJudge(PreferLonger(position_bias=1.0))
    kwargs = {"instructions": ["Q"], "inputs": [""], "responses": ["aaaa"], "baselines": ["bbbb"]}
    averaged = judge_against_baseline(judge, protocol="both-orders", **kwargs)[0]
    paper = judge_against_baseline(judge, protocol="paper", **kwargs)[0]
    assert averaged.consistent is False and paper.consistent is False
    assert (averaged.outcome_candidate_first, averaged.outcome_candidate_second) == ("win", "loss")
    assert paper.outcome == "tie" and paper.p_tie == 1.0
    assert summary_metrics(paper)["consistency"] == 0.0


def test_first_order_protocol_judges_once_and_has_no_consistency() -> None:
    judge = FakeJudge()
    summaries = judge_against_baseline(
        judge, instructions=["Q", "Q"], inputs=["", ""], responses=["long answer", "a"], baselines=["b", "longer"],
        protocol="first-order",
    )  # fmt: skip
    assert judge.calls == 1 and len(judge.batches[0]) == 2
    assert [s.outcome for s in summaries] == ["win", "loss"]
    assert all(s.consistent is None and s.outcome_candidate_second is None for s in summaries)
    assert math.isnan(summary_metrics(summaries[0])["consistency"])


@pytest.mark.parametrize("state", [VerdictState.UNPARSED, VerdictState.OVER_CONTEXT, VerdictState.ERROR])
def test_failed_verdicts_are_failed_never_tie_or_loss(state: VerdictState) -> None:
    summary = judge_against_baseline(
        FakeJudge(Fixed(state)), instructions=["Q"], inputs=[""], responses=["a"], baselines=["b"]
    )[0]
    assert summary.failed and summary.outcome is None and summary.state == state.value
    assert summary.p_candidate is None and summary.consistent is None and summary.error
    metrics = summary_metrics(summary)
    assert metrics["failed"] == 1.0
    for name in ("win_rate", "win", "tie", "loss", "consistency"):
        assert math.isnan(metrics[name]), name


def test_one_failed_order_fails_the_judgment() -> None:
    def fail_when_candidate_second(item: PairItem) -> Verdict:
        if item.response2 == "candidate":
            return Verdict.failed("fake", VerdictState.UNPARSED, "no verdict in the output")
        return Verdict.hard("fake", Label.FIRST)

    summary = judge_against_baseline(
        FakeJudge(fail_when_candidate_second), instructions=["Q"], inputs=[""], responses=["candidate"],
        baselines=["baseline"],
    )[0]  # fmt: skip
    assert summary.outcome is None and summary.state == "unparsed"
    assert summary.outcome_candidate_first == "win" and summary.outcome_candidate_second is None
    assert "(2, 1)" in (summary.error or "")


def test_judge_against_baseline_checks_its_arguments() -> None:
    judge = FakeJudge()
    with pytest.raises(ValueError, match="different lengths"):
        judge_against_baseline(judge, instructions=["Q"], inputs=[""], responses=["a", "b"], baselines=["c"])
    with pytest.raises(ValueError, match=r"responses\[0\] must be a string"):
        judge_against_baseline(judge, instructions=["Q"], inputs=[""], responses=[None], baselines=["c"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown judging protocol 'both'"):
        judge_against_baseline(
            judge, instructions=["Q"], inputs=[""], responses=["a"], baselines=["c"], protocol="both"
        )
    assert judge_against_baseline(judge, instructions=[], inputs=[], responses=[], baselines=[]) == []
    assert judge.calls == 0


def test_summary_json_round_trip_and_validation() -> None:
    summary = judge_against_baseline(
        FakeJudge(), instructions=["Q"], inputs=[""], responses=["é, ünïcode"], baselines=["b"]
    )[0]
    assert JudgmentSummary.from_json(summary.to_json()) == summary
    assert "ünïcode" in summary.to_json()  # readable in --log_samples
    with pytest.raises(ValueError, match="not a judgment summary"):
        JudgmentSummary.from_json('{"outcome": "win"}')
    with pytest.raises(ValueError, match="not a judgment summary"):
        JudgmentSummary.from_json("Paris is the capital.")
    with pytest.raises(ValueError, match="does not fit state"):
        JudgmentSummary("tie", "unparsed", None, None, None, None, None, None, None, "x", "j", "paper", "r")


def test_judge_for_spec_builds_each_judge_once(tiny_judge_dir: Path) -> None:
    spec = f"pandalm:{tiny_judge_dir}"
    first = judging.judge_for_spec(spec)
    assert judging.judge_for_spec(spec) is first
    judging.clear_judge_cache()
    assert judging.judge_for_spec(spec) is not first


def test_unknown_judge_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not understood"):
        judging.validate_judge_spec("gpt4:turbo")
    # Valid syntax, but checked further before any generation: the model must be found (offline: in the HF cache).
    with pytest.raises(JudgeLoadError, match="not in the local Hugging Face cache"):
        judging.validate_judge_spec("pandalm:some/model")
    with pytest.raises(JudgeLoadError, match="no such folder"):
        PandaLMJudgeFilter(**FILTER_OPTIONS, judge="pandalm:/no/such/dir")
    with pytest.raises(ConfigError, match="not understood"):
        PandaLMJudgeFilter(**FILTER_OPTIONS, judge="gpt4:turbo").apply(RESPONSES, DOCS)


# -- the filter --------------------------------------------------------------------------------------------------


def test_filter_judges_every_document_in_one_batch(use_judges: Callable[[dict[str, FakeJudge]], None]) -> None:
    judge = FakeJudge()
    use_judges({"fake:one": judge})
    out = PandaLMJudgeFilter(**FILTER_OPTIONS, judge="fake:one").apply(RESPONSES, DOCS)
    assert judge.calls == 1 and len(judge.batches[0]) == 2 * len(DOCS)
    summaries = _summaries(out)
    assert [s.outcome for s in summaries] == ["win", "win", "loss"]
    # Templates were rendered per document: the input of doc 1 and the baselines reached the judge.
    assert judge.batches[0][1].input == "The cat sleeps." and judge.batches[0][2].response2 == DOCS[2]["reference"]
    assert [s.response for s in summaries] == [r[0] for r in RESPONSES]


def test_filter_takes_the_first_generation_and_accepts_plain_strings(
    use_judges: Callable[[dict[str, FakeJudge]], None],
) -> None:
    judge = FakeJudge()
    use_judges({"fake:one": judge})
    flt = PandaLMJudgeFilter(**FILTER_OPTIONS, judge="fake:one")
    out = flt.apply([["first", "second"], "plain", ("tuple",)], DOCS)
    assert [s.response for s in _summaries(out)] == ["first", "plain", "tuple"]
    with pytest.raises(ValueError, match="document 0 has no generated response"):
        flt.apply([[]], DOCS[:1])


def test_filter_groups_documents_by_rendered_judge(use_judges: Callable[[dict[str, FakeJudge]], None]) -> None:
    one, two = FakeJudge(judge_id="one"), FakeJudge(judge_id="two")
    use_judges({"fake:one": one, "fake:two": two})
    docs = [{**doc, "judge": spec} for doc, spec in zip(DOCS, ["fake:one", "fake:two", "fake:one"], strict=True)]
    out = PandaLMJudgeFilter(**FILTER_OPTIONS, judge="{{ judge }}", protocol="first-order").apply(RESPONSES, docs)
    assert (one.calls, len(one.batches[0]), two.calls, len(two.batches[0])) == (1, 2, 1, 1)
    assert [s.judge for s in _summaries(out)] == ["one", "two", "one"]


def test_filter_failed_judgments_give_failed_metrics(use_judges: Callable[[dict[str, FakeJudge]], None]) -> None:
    use_judges({"fake:broken": FakeJudge(Fixed(VerdictState.UNPARSED))})
    out = PandaLMJudgeFilter(**FILTER_OPTIONS, judge="fake:broken").apply(RESPONSES, DOCS)
    for entry in out:
        assert winrate.pandalm_failed([""], entry) == 1.0
        assert math.isnan(winrate.pandalm_win_rate([""], entry))
        assert math.isnan(winrate.pandalm_tie([""], entry)) and math.isnan(winrate.pandalm_loss([""], entry))


def test_filter_template_with_missing_field_is_a_clear_error(
    use_judges: Callable[[dict[str, FakeJudge]], None],
) -> None:
    judge = FakeJudge()
    use_judges({"fake:one": judge})
    docs = [DOCS[0], {"question": "Q", "context": ""}]  # document 1 lacks "reference"
    with pytest.raises(TemplateError) as info:
        PandaLMJudgeFilter(**FILTER_OPTIONS, judge="fake:one").apply(RESPONSES[:2], docs)
    message = str(info.value)
    assert "'baseline'" in message and "document 1" in message and "'reference' is undefined" in message
    assert "context, question" in message  # lists the fields the document has
    assert judge.calls == 0  # nothing was judged


def test_filter_renders_full_jinja_templates() -> None:
    flt = PandaLMJudgeFilter(
        instruction="{{ question | upper }}{% if context %} (see input){% endif %}",
        input="{{ context | default('none') }}",
        baseline="Reference: {{ reference }}",
        judge="fake:x",
    )
    assert flt.render(DOCS[1], 1) == {
        "instruction": "TRANSLATE TO FRENCH. (see input)",
        "input": "The cat sleeps.",
        "baseline": "Reference: Le chat.",
        "judge": "fake:x",
        "protocol": "both-orders",
    }
    # A null field prints as nothing (not "None"), in the fast path and in full templates alike.
    nulls = flt.render({**DOCS[0], "context": None}, 0)
    assert (nulls["instruction"], nulls["input"]) == ("NAME A COLOUR.", "")  # default() is for undefined only
    plain = PandaLMJudgeFilter(
        instruction="{{ question }}", input="{{ context }}", baseline="[{{ context }}]", judge="fake:x"
    )
    assert plain.render({**DOCS[0], "context": None}, 0)["input"] == ""
    assert plain.render({**DOCS[0], "context": None}, 0)["baseline"] == "[]"
    with pytest.raises(TemplateError, match=r"'baseline' = 'Reference: \{\{ reference \}\}' cannot be rendered"):
        flt.render({"question": "Q", "context": ""}, 7)


def test_filter_option_errors() -> None:
    with pytest.raises(ValueError, match="needs the option"):
        PandaLMJudgeFilter(instruction="{{ question }}")
    with pytest.raises(ValueError, match="Did you mean 'baseline'"):
        PandaLMJudgeFilter(**FILTER_OPTIONS, baselines="{{ x }}")
    with pytest.raises(TemplateError, match="invalid template"):
        PandaLMJudgeFilter(instruction="{{ question", baseline="b")
    with pytest.raises(TemplateError, match=r'write baseline: "\{\{ reference \}\}"'):
        PandaLMJudgeFilter(instruction="{{ question }}", baseline="reference", judge="fake:x").apply(RESPONSES, DOCS)
    with pytest.raises(TemplateError, match="unknown judging protocol"):
        PandaLMJudgeFilter(**FILTER_OPTIONS, protocol="sideways").apply(RESPONSES, DOCS)


# -- metrics -----------------------------------------------------------------------------------------------------


def test_metrics_read_the_filter_output() -> None:
    summary = judge_against_baseline(
        FakeJudge(), instructions=["Q"], inputs=[""], responses=["a longer answer"], baselines=["b"]
    )[0]
    text = summary.to_json()
    values = {name: fn(["reference"], [text]) for name, fn in winrate.METRICS.items()}
    assert values == {
        "pandalm_win_rate": 1.0,
        "pandalm_win": 1.0,
        "pandalm_tie": 0.0,
        "pandalm_loss": 0.0,
        "pandalm_failed": 0.0,
        "pandalm_consistency": 1.0,
    }
    assert winrate.pandalm_win_rate(["reference"], [[text]]) == 1.0  # the filter's list, without take_first
    assert set(winrate.HIGHER_IS_BETTER) == set(winrate.METRICS)
    assert all(fn.__name__ == name for name, fn in winrate.METRICS.items())  # lm-eval names metrics by __name__


def test_metrics_reject_other_output_with_value_error() -> None:
    # ValueError, not TypeError: lm-eval retries a metric that raises TypeError with another signature.
    with pytest.raises(ValueError, match="Add the filter"):
        winrate.pandalm_win_rate(["gold"], ["Paris"])
    with pytest.raises(ValueError, match="one document at a time"):
        winrate.pandalm_win(["a", "b"], ["x", "y"])


# -- end to end: the example task ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_candidate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lm_eval_pandalm.testing.tiny_models import build_tiny_candidate

    return build_tiny_candidate(tmp_path_factory.mktemp("tiny") / "candidate")


def test_example_task_runs_end_to_end(
    tiny_judge_dir: Path, tiny_candidate_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    source = (REPO / "examples" / "judged_task.yaml").read_text(encoding="utf-8")
    default_judge = 'judge: "pandalm:WeOpenML/PandaLM-7B-v1"'
    assert source.count(default_judge) == 1
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "judged_task.yaml").write_text(source.replace(default_judge, f'judge: "pandalm:{tiny_judge_dir}"'))
    rows = [
        {"question": "Name three primary colours.", "context": "", "reference_answer": "Red, yellow and blue."},
        {"question": "Translate into French.", "context": "The cat sleeps.", "reference_answer": "Le chat dort."},
        {"question": "Write a short poem about a river.", "context": "", "reference_answer": "The river flows."},
    ]
    (tmp_path / "judged_task_data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.chdir(tmp_path)  # the example's data_files path is relative to the working directory
    monkeypatch.setenv("DISABLE_MULTIPROC", "1")

    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(tiny_candidate_dir), "device": "cpu"},
        tasks=["my_judged_task"],
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
        gen_kwargs={"max_gen_toks": 8},
        bootstrap_iters=200,
        log_samples=True,
    )
    assert results is not None
    figures = results["results"]["my_judged_task"]
    for name in winrate.METRICS:
        assert isinstance(figures[f"{name},pandalm"], float)
        assert f"{name}_stderr,pandalm" in figures
    assert figures["pandalm_failed,pandalm"] == 0.0  # short answers: every prompt fits the tiny judge
    assert figures["pandalm_win,pandalm"] + figures["pandalm_tie,pandalm"] + figures["pandalm_loss,pandalm"] == 1.0
    samples = results["samples"]["my_judged_task"]
    assert len(samples) == len(rows)
    for sample in samples:
        summary = JudgmentSummary.from_json(sample["filtered_resps"][0])
        assert summary.outcome in ("win", "tie", "loss") and summary.judge == f"pandalm:{tiny_judge_dir}"
        assert summary.response == sample["resps"][0][0]
