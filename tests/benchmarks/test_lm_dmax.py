"""lm_dmax's synthetic tasks, their answer checks and the goal's matching rule (no training)."""

import random

import pytest

from benchmarks.common import RESULTS, read_csv_rows
from benchmarks.lm_dmax import (
    DISTILLED_CONTROL,
    DMAX_MODEL,
    MIN_ACCURACY,
    TASKS,
    add_problem,
    checker,
    main,
    matched,
    pick_problem,
    pick_valid,
    result_task,
)


def test_pick_problem_has_many_right_answers_and_the_check_accepts_each():
    prompt, answer = pick_problem(random.Random(0), 4)
    slots = prompt[2:-1].split(",")
    assert prompt.startswith("w:") and prompt.endswith(">") and len(slots) == 4
    assert len(answer) == 8 and pick_valid(prompt, answer)
    # every one of the 2**4 choices is right
    choices = [s.split("-") for s in slots]
    for mask in range(16):
        other = "".join(c[(mask >> j) & 1] * 2 for j, c in enumerate(choices))
        assert pick_valid(prompt, other)
    assert pick_problem(random.Random(0), 4) == (prompt, answer)  # seeded


def test_pick_check_rejects_mixed_slots_foreign_digits_and_wrong_lengths():
    prompt = "w:3-7,1-5>"
    assert pick_valid(prompt, "3355") and pick_valid(prompt, "7711")
    assert not pick_valid(prompt, "3755")  # a slot's two cells disagree (modes mixed)
    assert not pick_valid(prompt, "4455")  # 4 is not offered in slot 0
    assert not pick_valid(prompt, "335")  # too short
    assert not pick_valid(prompt, "335511")  # too long


def test_checker_is_exact_for_one_answer_tasks_and_validity_for_pick():
    prompt, answer = add_problem(random.Random(3), 5)
    exact = checker("add")
    assert exact(prompt, answer, answer) and not exact(prompt, answer[::-1] + "x", answer)
    assert checker("pick")("w:3-7>", "77", "33")  # another right answer than the reference


def _row(model, setting, acc, tpf):
    return {"model": model, "setting": setting, "accuracy_pct": acc, "tpf": tpf}


def test_matched_compares_each_dmax_row_with_the_fastest_plain_row_at_its_accuracy():
    rows = [
        _row("masked (base)", "threshold tau=0.5", 60.0, 10.0),  # fast but inaccurate
        _row("masked (base)", "threshold tau=0.9", 100.0, 1.0),
        _row("masked +ft (control)", "threshold tau=0.7", 99.0, 2.0),  # fastest at >= 98.5 %
        _row(DMAX_MODEL, "threshold tau=0.7", 99.0, 7.0),
        _row(DMAX_MODEL, "DMax soft tau=0.7", 99.5, 6.0),
        _row(DISTILLED_CONTROL, "threshold tau=0.7", 100.0, 8.0),
    ]
    notes = "\n".join(matched(rows, 12))
    assert "(99.0%, TPF 2.00): 3.00x" in notes  # against the control's row, not the base's 1.0
    assert "goal (" in notes and notes.count("MET") == 1 and "): MET" in notes
    # the self-distilled control is faster still: DMax adds nothing beyond self-distillation
    assert "(100.0%, TPF 8.00): 0.75x" in notes
    assert notes.rstrip().endswith("same self-distilled answers): MISSED")


def test_matched_never_meets_the_goal_below_the_accuracy_floor():
    low = MIN_ACCURACY - 10
    rows = [
        _row("masked (base)", "threshold tau=0.9", low, 1.0),
        _row(DMAX_MODEL, "DMax soft tau=0.1", low, 12.0),  # 12x faster, but wrong too often
    ]
    notes = "\n".join(matched(rows, 12))
    assert "12.00x" in notes and "MET" not in notes.replace("MISSED", "")


def test_run_names_keep_the_committed_result_and_cache_names():
    # the CSVs under benchmarks/results/ carry these suffixes; sort-8 keeps its original paths
    sort, add, pick = TASKS["sort"], TASKS["add"], TASKS["pick"]
    assert sort.run_names(8) == ("", "")
    assert sort.run_names(16) == ("-16", "_sort16")
    assert add.run_names(8) == ("-add8", "_add8")
    assert add.run_names(8, lsb_first=True) == ("-add8-lsb", "_add8_lsb")
    assert pick.run_names(12) == ("-pick12", "_pick12")


def test_task_table_answer_lengths_and_grids():
    assert [TASKS[t].cells(8) for t in ("sort", "add", "pick")] == [8, 9, 16]
    # pick's plain grid is dense just above 0.5, where its plain sampler trades speed for accuracy
    assert {0.502, 0.505, 0.51} <= set(TASKS["pick"].thresholds)
    prompt, answer = TASKS["pick"].make_problem(random.Random(0), 3)
    assert pick_valid(prompt, answer)


def test_flags_that_do_not_apply_exit_with_one_clear_line(capsys):
    for argv, flag in (
        (["--device", "cuda"], "--device"),
        (["--task", "sort", "--lsb-first"], "--lsb-first"),
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and flag in capsys.readouterr().err


def test_result_task_names_the_rows_of_every_committed_variant():
    """lm_dmax.csv holds one row set per task variant; result_task gives each run's name."""
    sort, add, pick = TASKS["sort"], TASKS["add"], TASKS["pick"]
    runs = [
        result_task(sort, 8),
        result_task(sort, 16),
        result_task(sort, 32),
        result_task(add, 8),
        result_task(add, 8, lsb_first=True),
        result_task(add, 8, mask_ratio=0.75),
        result_task(pick, 6),
        result_task(pick, 6, self_distill=True),
        result_task(pick, 6, self_distill=True, ft_steps=1500),
        result_task(pick, 12, self_distill=True),
    ]
    assert runs[4:6] == ["add8_lsb", "add8_mr75"] and runs[8] == "pick6_sd_ft1500"
    assert result_task(sort, 8, ft_steps=sort.full["ft"]) == "sort8"  # the default length
    committed = {r["task"] for r in read_csv_rows(RESULTS / "lm_dmax.csv")[1]}
    assert committed == set(runs)
