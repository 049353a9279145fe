"""Sweeps without training: the request contract and the search space refuse bad input in
one clear line; every sampler and pruner can drive a study; the dispatcher's step asks,
queues, tells and stops as documented, cap included; the dashboard, the CLI and the API
show it. (Real trials through the real dispatcher: test_sweeps_e2e.py.)"""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from jsonschema import validate
from sqlalchemy import update
from sqlmodel import Session, select

from app.cli import cli
from app.cli.sweep_cmds import parse_params
from app.core.errors import BudgetExceeded, ConfigError, InvalidTransitionError
from app.core.models import Job, Sweep
from app.core.states import JobState
from app.dashboard.data import gather
from app.dashboard.schema import SCHEMA
from app.services import Services
from app.sweeps.trial import OBJECTIVE_ATTR

LR = {"lr": {"type": "log", "low": 1e-4, "high": 1e-2}}


def _create(services: Services, **more: Any) -> Sweep:
    request = {"name": "s", "space": LR, "base_config": {"total_timesteps": 2048},
               "n_trials": 4, "parallelism": 2, "seed": 1, **more}
    return services.sweeps.create(request)


def _jobs(services: Services, sweep: Sweep) -> list[Job]:
    with Session(services.engine) as s:
        return list(s.exec(select(Job).where(Job.sweep_id == sweep.id)
                           .order_by(Job.trial_number)).all())


def _end(services: Services, job: Job, state: str, objective: float | None = None,
         cost_micros: int = 0) -> None:
    """Plays a trial's job ending (the dispatcher's part), and its trainer's report."""
    sweep = services.sweeps.get(job.sweep_id)
    if objective is not None:
        study = services.sweeps.study(sweep)
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, job.trial_number)
        study._storage.set_trial_user_attr(trial_id, OBJECTIVE_ATTR, objective)
    with Session(services.engine) as s:
        s.execute(update(Job).where(Job.id == job.id).values(state=state,
                                                             cost_micros=cost_micros))
        s.commit()


@pytest.mark.parametrize(("space", "message"), [
    ({}, "at least one option"),
    ({"lr": {"type": "log", "low": 0, "high": 1e-2}}, "a log range needs low > 0"),
    ({"lr": {"type": "uniform", "low": 1e-2, "high": 1e-4}}, "must be below high"),
    ({"lr": {"type": "uniform", "low": float("nan"), "high": 1}}, "finite number"),
    ({"lr": {"type": "uniform", "low": 0, "high": float("inf")}}, "finite number"),
    ({"lr": {"type": "uniform", "low": 0, "high": 1e300}}, "finite number"),
    ({"lr": {"type": "fancy", "low": 0, "high": 1}}, "type must be one of"),
    ({"lr": [1e-4, 1e-2]}, "expected a table"),
    ({"pizza": {"type": "int", "low": 1, "high": 3}}, "'pizza' is not a training option"),
    ({"device": {"type": "categorical", "choices": ["cpu"]}}, "not a hyperparameter"),
    ({"lr": {"type": "uniform", "low": -1, "high": 1}}, "-1 is not a valid setting"),
    ({"num_envs": {"type": "uniform", "low": 1, "high": 8}}, "use type \"int\""),
    ({"num_envs": {"type": "int", "low": 1.5, "high": 8}}, "whole bounds"),
    ({"hidden": {"type": "categorical", "choices": [16, 16]}}, "choices repeat"),
    ({"lr": {"type": "log", "low": 1e-4, "high": 1e-2, "bogus": 1}}, "unknown key"),
])
def test_a_bad_space_is_refused_naming_the_option(services: Services, space: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        services.sweeps.create({"name": "bad", "space": space})
    assert services.sweeps.list() == []


@pytest.mark.parametrize(("field", "value"), [
    ("n_trials", 0), ("n_trials", 10**12), ("n_trials", True), ("parallelism", 65),
    ("seed", -1), ("max_cost_usd", "NaN"), ("max_cost_usd", "-1"), ("max_cost_usd", "lots"),
    ("sampler", "bayes"), ("pruner", "scissors"), ("objective", "happiness"),
    ("name", "a\x1b[31mred"), ("colour", "blue"), ("cpus", math.inf)])
def test_the_request_contract_names_the_field(services: Services, field: str,
                                              value: Any) -> None:
    with pytest.raises(ConfigError) as exc:
        services.sweeps.create({"name": "bad", "space": LR, field: value})
    assert str(exc.value).startswith(f"{field}: ")


def test_the_command_line_form_parses_every_kind() -> None:
    assert parse_params(["lr=log:1e-5:1e-2", "ent_coef=uniform:0:0.05:0.01",
                      "rollout_steps=int:32:256:32", "hidden=choice:16,32,64",
                      "norm_adv=choice:true,false"]) == {
        "lr": {"type": "log", "low": 1e-5, "high": 1e-2},
        "ent_coef": {"type": "uniform", "low": 0, "high": 0.05, "step": 0.01},
        "rollout_steps": {"type": "int", "low": 32, "high": 256, "step": 32},
        "hidden": {"type": "categorical", "choices": [16, 32, 64]},
        "norm_adv": {"type": "categorical", "choices": [True, False]}}
    for bad in ("lr", "lr=log", "lr=log:1", "lr=log:a:b", "lr=log:1:2:3:4"):
        with pytest.raises(ConfigError, match="--param"):
            parse_params([bad])


@pytest.mark.parametrize(("sampler", "pruner"), [
    ("tpe", "median"), ("random", "none"), ("grid", "median"), ("qmc", "median"),
    ("cmaes", "median"), ("tpe", "successive_halving"), ("tpe", "hyperband")])
def test_every_sampler_and_pruner_drives_a_study(services: Services, sampler: str,
                                                 pruner: str) -> None:
    space = {"hidden": {"type": "categorical", "choices": [16, 32]},
             "rollout_steps": {"type": "int", "low": 32, "high": 64, "step": 32}}
    if sampler != "grid":
        space["lr"] = LR["lr"]
    sweep = _create(services, name=f"{sampler}-{pruner}", space=space, sampler=sampler,
                    pruner=pruner, n_trials=6, parallelism=2)
    told = []
    for value in (3.0, 2.0, 1.0):
        services.sweeps.step()
        for job in _jobs(services, sweep):
            if job.state == "queued":
                _end(services, job, "succeeded", value)
                told.append(value)
    services.sweeps.step()
    study = services.sweeps.study(sweep)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == len(told) >= 4 and study.best_value == min(told)
    settings = [tuple(sorted(t.params.items())) for t in study.get_trials()]
    if sampler == "grid":  # the grid has 4 points: the sweep was cut to them, each once
        assert services.sweeps.get(sweep.id).n_trials == 4 and len(set(settings)) == 4
    for job in _jobs(services, sweep):  # every trial's settings reached its job
        trial = study.get_trials()[job.trial_number]
        assert {k: job.config[k] for k in trial.params} == trial.params


def test_the_step_asks_queues_tells_and_completes(services: Services) -> None:
    sweep = _create(services, pruner="median")
    services.sweeps.step()
    first = _jobs(services, sweep)
    assert [j.trial_number for j in first] == [0, 1]  # parallelism 2
    assert first[0].name == "s-t0" and first[0].config["eval_every"] >= 1
    assert {j.config["lr"] for j in first} != {first[0].config["lr"]}  # two settings
    services.sweeps.step()  # nothing ended: nothing new
    assert len(_jobs(services, sweep)) == 2
    _end(services, first[0], "succeeded", 5.0)
    _end(services, first[1], "pruned")
    services.sweeps.step()
    jobs = _jobs(services, sweep)
    assert len(jobs) == 4
    study = services.sweeps.study(sweep)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "PRUNED", "RUNNING", "RUNNING"]
    _end(services, jobs[2], "failed")
    _end(services, jobs[3], "succeeded", 2.5)
    services.sweeps.step()
    assert services.sweeps.get(sweep.id).state == "completed"
    assert [t.state.name for t in services.sweeps.study(sweep).get_trials()] == \
        ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    shown = json.loads(CliRunner().invoke(cli, ["sweep", "show", "s", "--json"]).output)
    assert shown["sweep"]["best"]["number"] == 3 and shown["sweep"]["best"]["value"] == 2.5
    assert shown["sweep"]["counts"] == {"complete": 2, "pruned": 1, "fail": 1}


def test_a_trial_asked_but_never_queued_is_queued_by_the_next_step(services: Services) -> None:
    """A leader that died between asking the study and queueing the job: nothing is lost."""
    sweep = _create(services)
    study = services.sweeps.study(sweep)
    from app.sweeps.space import distributions

    orphan = study.ask(distributions(sweep.space))
    services.sweeps.step()
    jobs = _jobs(services, sweep)
    assert [j.trial_number for j in jobs] == [0, 1]
    assert jobs[0].config["lr"] == orphan.params["lr"]
    services.sweeps.step()  # and never twice
    assert len(_jobs(services, sweep)) == 2


def test_a_capped_sweep_stops_asking(services: Services) -> None:
    estimate = services.queue.estimate(services.queue.validate(
        {"name": "x", "config": {"total_timesteps": 2048, "eval_every": 1}})).cost_micros
    cap = estimate * 5 // 2  # room for two trials' forecasts, not three
    sweep = _create(services, n_trials=10, parallelism=5,
                    max_cost_usd=f"{cap / 1e6:.6f}")
    budget = services.budgets.get(f"sweep:{sweep.name}")
    assert (budget.scope, budget.scope_value, budget.hard) == ("sweep", str(sweep.id), True)
    services.sweeps.step()
    jobs = _jobs(services, sweep)
    assert len(jobs) == 2  # the cap counts queued trials' forecasts
    for job in jobs:
        _end(services, job, "succeeded", 1.0, cost_micros=estimate)
    services.sweeps.step()
    assert len(_jobs(services, sweep)) == 2
    assert services.sweeps.get(sweep.id).state == "capped"
    # The cap is a hard budget: a job of the sweep's scope is refused past it, too.
    with pytest.raises(BudgetExceeded, match=f"sweep:{sweep.name}"):
        spec = services.queue.validate({"name": "more", "config": {"total_timesteps": 2048}})
        from dataclasses import replace
        services.queue.store_one(replace(spec, sweep_id=sweep.id, trial_number=99))
    with pytest.raises(BudgetExceeded, match="below one trial's estimate"):
        _create(services, name="tiny", max_cost_usd="0.000001")


def test_stop_cancels_and_resume_replaces_them(services: Services) -> None:
    sweep = _create(services)
    services.sweeps.step()
    services.sweeps.stop("s")
    assert {j.state for j in _jobs(services, sweep)} == {"cancelled"}
    services.sweeps.step()
    study = services.sweeps.study(sweep)
    assert [t.user_attrs["oppen_end"] for t in study.get_trials()] == ["cancelled"] * 2
    stopped = services.sweeps.get(sweep.id)
    assert stopped.state == "stopped" and stopped.finished_at is not None  # settled
    with pytest.raises(InvalidTransitionError):
        services.sweeps.resume(sweep.id)  # type: ignore[arg-type]
        services.sweeps.resume(sweep.id)  # type: ignore[arg-type]
    assert services.sweeps.get(sweep.id).finished_at is None
    services.sweeps.step()  # cancelled trials do not count: two new ones
    assert [j.state for j in _jobs(services, sweep)] == ["cancelled"] * 2 + ["queued"] * 2


def test_the_dashboard_and_list_show_sweeps(services: Services) -> None:
    sweep = _create(services, max_cost_usd="1")
    services.sweeps.step()
    job = _jobs(services, sweep)[0]
    _end(services, job, "succeeded", 7.0, cost_micros=1234)
    services.sweeps.step()  # the study is told, and asks for the next trial
    data = gather(services, probe_cluster=False).to_dict()
    validate(data, SCHEMA)
    [row] = data["sweeps"]
    assert (row["name"], row["best_value"], row["spent_usd"], row["max_cost_usd"]) == \
        ("s", 7.0, "0.001234", "1")
    assert row["trials"] == {"succeeded": 1, "queued": 2}
    out = CliRunner().invoke(cli, ["dashboard"])
    assert out.exit_code == 0 and "Sweeps" in out.output
    listed = CliRunner().invoke(cli, ["sweep", "list"])
    assert listed.exit_code == 0 and "s " in listed.output and "1/4" in listed.output


def test_pruned_is_a_final_state_of_its_own() -> None:
    from app.core.states import ALLOWED, RESUMABLE, TERMINAL

    assert JobState.PRUNED in TERMINAL and JobState.PRUNED not in RESUMABLE
    assert ALLOWED[JobState.PRUNED] == frozenset()
    assert JobState.PRUNED in ALLOWED[JobState.RUNNING]


def test_cli_errors_are_one_line(services: Services) -> None:
    runner = CliRunner()
    for args, text in ((["sweep", "create", "x"], "give the options to search"),
                       (["sweep", "create", "x", "--param", "lr=log:0:1"], "low > 0"),
                       (["sweep", "show", "nope"], "no sweep 'nope'"),
                       (["sweep", "create", "x", "--param", "lr=log:1e-4:1e-2",
                         "--max-cost", "inf"], "max_cost_usd")):
        out = runner.invoke(cli, args)
        assert out.exit_code != 0 and text in out.output, out.output
        assert "Traceback" not in out.output


def test_a_trials_reporter_prunes_a_hopeless_trial(services: Services) -> None:
    """The trainer's side: reports reach the study, and the median pruner stops a trial
    worse than the median of earlier ones at the same step."""
    from app.sweeps.trial import TrialReporter

    sweep = _create(services, n_trials=5, parallelism=5)
    services.sweeps.step()
    jobs = _jobs(services, sweep)
    url = services.settings.resolved_database_url

    def reporter(number: int) -> TrialReporter:
        return TrialReporter(url, sweep.study_name, number, "mean_wait_s", "minimize",
                             "median", 2048)

    for number, value in enumerate((10.0, 11.0, 12.0)):  # three complete trials
        r = reporter(number)
        assert not r.report(value, 512) and not r.report(value, 1024)
        r.finish(value)
        _end(services, jobs[number], "succeeded")
    services.sweeps.step()
    good, bad = reporter(3), reporter(4)
    assert not good.report(9.0, 512)
    assert bad.report(50.0, 512) and bad.pruned_at == 512
    study = services.sweeps.study(sweep)
    assert study.get_trials()[4].intermediate_values == {512: 50.0}
    assert [t.value for t in study.get_trials()[:3]] == [10.0, 11.0, 12.0]


def test_bench_sweep_measures_both_searches_and_both_starts(oppen_home: Any) -> None:
    """The benchmark's document: both methods measured per seed, both starts measured; its
    figures are in docs/benchmarks.md, not asserted here."""
    import os
    import subprocess

    from tests.support.processes import oppen_cmd

    def bench(*args: str) -> dict[str, Any]:
        proc = subprocess.run(oppen_cmd("bench", "sweep", *args, "--json"), capture_output=True,
                              text=True, env={**os.environ}, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    doc = bench("--part", "search", "--seeds", "1", "--trials", "4", "--steps", "2048")
    runs = doc["search"]["runs"]
    assert sorted(r["method"] for r in runs) == ["random-none", "tpe-median"]
    assert all(r["cpu_s"] > 0 and r["trials"] == 4 and math.isfinite(r["best"]) for r in runs)
    assert next(r for r in runs if r["method"] == "random-none")["pruned"] == 0
    doc = bench("--part", "latency", "--repeats", "1", "--dispatcher-trials", "2")
    fg, dp = doc["cheap_trials"]["foreground"], doc["cheap_trials"]["dispatcher"]
    assert len(fg["cold_s"]) == len(fg["warm_s"]) == 1 and min(fg["cold_s"] + fg["warm_s"]) > 0
    assert len(dp["cold_s"]) == len(dp["warm_s"]) == 2


def test_the_qmc_sampler_is_made_without_optunas_experimental_warning() -> None:
    """The dispatcher makes a sampler for each ask: QMC's warning would fill its log."""
    import warnings

    from app.sweeps.choices import sampler

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        made = sampler("qmc", 7, {})
    assert type(made).__name__ == "QMCSampler"
    assert [w for w in seen if "experimental" in str(w.message).lower()] == []
