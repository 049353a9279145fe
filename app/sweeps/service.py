"""Sweeps: creating, stepping, stopping and resuming Optuna studies whose trials are jobs.

The study lives in Optuna's RDB storage in Oppen's database; the sweep row beside it holds
what Oppen needs (the base config, the space, resources, the cap, the MLflow parent run).

The leading dispatcher steps every sweep once a tick (``step``, the core's SweepDriver):

1. every RUNNING trial whose job has ended is told: a succeeded job's objective (kept on the
   trial by its trainer), ``pruned`` for a pruned one, a failure for anything else;
2. a RUNNING trial with no job (a leader died between asking and queueing) gets its job now;
3. while fewer than ``parallelism`` trials run, fewer than ``n_trials`` have been asked, and
   the cost cap has room for another trial's estimate, the study is asked for a trial
   (ask-and-tell) and the trial is queued as a job.

Every write is idempotent (a trial's job has a unique (sweep, trial) key and an idempotency
key; telling a finished trial is skipped), so a crash anywhere is finished by the next step
with no trial lost or run twice.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.core.errors import BudgetExceeded, ConfigError, InvalidTransitionError, NotFoundError
from app.core.models import Job, Sweep
from app.core.money import to_micros, usd_text
from app.core.ports import ConfigValidator
from app.core.queue import QueueService
from app.core.states import TERMINAL, JobState
from app.core.timeutil import as_utc, utcnow
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService
from app.sweeps import choices
from app.sweeps.contract import SweepRequest, parse_request
from app.sweeps.space import distributions, parse_space
from app.sweeps.storage import storage
from app.sweeps.trial import OBJECTIVE_ATTR
from app.training.objectives import OBJECTIVES

log = logging.getLogger(__name__)

# Why a trial ended without a value, kept on it: "cancelled" and "refused" trials are not
# counted against n_trials (a stopped sweep's, and one its cap refused, can be made again).
END_ATTR = "oppen_end"
NOT_COUNTED = ("cancelled", "refused")
# How many evaluations a trial makes when its base config sets none: what the pruner sees.
REPORTS_PER_TRIAL = 4


def trial_steps(config: dict[str, Any]) -> int:
    return int(config.get("total_timesteps", 0))


@dataclass
class SweepService:
    engine: Engine
    queue: QueueService
    budgets: BudgetService
    database_url: str
    validate: ConfigValidator
    tracker: Tracker | None = None

    # --- creating ------------------------------------------------------------------------

    def create(self, item: dict[str, Any] | SweepRequest, team: str | None = None) -> Sweep:
        """Checks the request completely, makes the study, the sweep, its cap and its MLflow
        parent run. Its first trials are queued by the dispatcher's next tick."""
        import optuna

        req = parse_request(item)
        team = req.team or team or "default"
        base = self.validate(dict(req.base_config))
        space = parse_space(req.space, base, self.validate)
        for name in space:
            base.pop(name, None)  # each trial sets them; the base keeps only what is fixed
        base = self._with_reports(base)
        choices.check_sampler(req.sampler, space)
        n_trials = req.n_trials
        if req.sampler == "grid":
            n_trials = min(n_trials, choices.grid_size(space))
        from app.training.config import TrainConfig
        from app.training.evaluate import headline_metric

        objective = req.objective or headline_metric(TrainConfig.from_dict(base))
        direction = req.direction or OBJECTIVES[objective]
        # The resources and priority as a job submission would have them: one contract.
        probe = self.queue.validate({"name": req.name, "config": base, "priority": req.priority,
                                     "cpus": req.cpus, "memory_mb": req.memory_mb,
                                     "gpus": req.gpus, "team": team, "project": req.project})
        with Session(self.engine) as s:
            if s.exec(select(Sweep.id).where(Sweep.name == req.name)).first() is not None:
                raise ConfigError(f"a sweep named {req.name!r} exists; choose another name")
        estimate = self.queue.estimate(probe)
        if req.max_cost_usd is not None and estimate is not None \
                and estimate.cost_micros > to_micros(req.max_cost_usd):
            raise BudgetExceeded(
                f"the cap of ${req.max_cost_usd} is below one trial's estimate "
                f"(${usd_text(estimate.cost_micros)}); raise it, or train each trial for "
                "fewer steps")
        study_name = f"oppen-{req.name}-{uuid.uuid4().hex[:8]}"
        optuna.create_study(study_name=study_name, storage=storage(self.database_url),
                            direction=direction)
        # Made stopped, and running only once its cap and parent run exist: a dispatcher's
        # tick in between asks it for nothing.
        sweep = Sweep(name=req.name, study_name=study_name, state="stopped",
                      reason="being created", team=team, project=req.project,
                      priority_class=req.priority, base_config=base, space=space,
                      cpus=probe.cpus, memory_mb=probe.memory_mb, gpus=probe.gpus,
                      sampler=req.sampler, pruner=req.pruner, seed=req.seed,
                      objective=objective, direction=direction, n_trials=n_trials,
                      parallelism=min(req.parallelism, n_trials),
                      max_cost_micros=None if req.max_cost_usd is None
                      else to_micros(req.max_cost_usd))
        with Session(self.engine) as s:
            s.add(sweep)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                self._forget_study(study_name)
                raise ConfigError(f"a sweep named {req.name!r} exists; choose another "
                                  "name") from None
            s.refresh(sweep)
        try:
            if req.max_cost_usd is not None:
                self._set_cap(sweep, req.max_cost_usd)
        except Exception:
            self._forget(sweep)  # a sweep without its cap never runs
            raise
        self._start_parent_run(sweep)
        self._set_state(sweep.id, "running", "")  # type: ignore[arg-type]
        return self.get(sweep.id)  # type: ignore[arg-type]

    def _forget_study(self, study_name: str) -> None:
        import optuna

        try:
            optuna.delete_study(study_name=study_name, storage=storage(self.database_url))
        except KeyError:
            pass

    def _forget(self, sweep: Sweep) -> None:
        with Session(self.engine) as s:
            row = s.get(Sweep, sweep.id)
            if row is not None:
                s.delete(row)
                s.commit()
        self._forget_study(sweep.study_name)

    def _with_reports(self, base: dict[str, Any]) -> dict[str, Any]:
        """Trials report to the pruner at each evaluation: a base config without evaluations
        gets REPORTS_PER_TRIAL of them."""
        if base.get("eval_every"):
            return base
        from app.training.config import TrainConfig

        iterations = TrainConfig.from_dict(base).num_iterations
        return self.validate({**base, "eval_every": max(1, iterations // REPORTS_PER_TRIAL)})

    def _set_cap(self, sweep: Sweep, usd: Decimal) -> None:
        """The cap is a hard budget of scope "sweep": admission, submission and the running
        spend guard enforce it as they enforce a team's."""
        start = as_utc(sweep.created_at) - timedelta(seconds=1)
        budget = self.budgets.set(f"sweep:{sweep.name}", usd, scope="sweep",
                                  scope_value=str(sweep.id), period="custom",
                                  starts_at=start, ends_at=start + timedelta(days=3650),
                                  hard=True)
        with Session(self.engine) as s:
            row = s.get(Sweep, sweep.id)
            assert row is not None
            row.budget_name = budget.name
            s.add(row)
            s.commit()

    def _start_parent_run(self, sweep: Sweep) -> None:
        if self.tracker is None:
            return
        import json

        try:
            run_id = self.tracker.create_run(
                f"sweep {sweep.name}", {"oppen.sweep": sweep.name, "oppen.kind": "sweep"},
                {"space": json.dumps(sweep.space), "sampler": sweep.sampler,
                 "pruner": sweep.pruner, "objective": sweep.objective,
                 "direction": sweep.direction, "n_trials": str(sweep.n_trials),
                 "base_config": json.dumps(sweep.base_config)})
        except Exception as exc:  # noqa: BLE001 - the sweep runs without its parent run
            log.warning("sweep %s: no MLflow parent run (%s)", sweep.name, exc)
            return
        with Session(self.engine) as s:
            row = s.get(Sweep, sweep.id)
            assert row is not None
            row.mlflow_run_id = run_id
            s.add(row)
            s.commit()

    # --- reading -------------------------------------------------------------------------

    def get(self, ref: int | str) -> Sweep:
        """A sweep by id or by name."""
        with Session(self.engine) as s:
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                found = s.get(Sweep, int(ref))
            else:
                found = s.exec(select(Sweep).where(Sweep.name == ref)).first()
            if found is None:
                raise NotFoundError(f"no sweep {ref!r}")
            return found

    def list(self, team: str | None = None) -> list[Sweep]:
        with Session(self.engine) as s:
            stmt = select(Sweep).order_by(col(Sweep.id).desc())
            if team is not None:
                stmt = stmt.where(Sweep.team == team)
            return list(s.exec(stmt).all())

    def study(self, sweep: Sweep, asked: int = 0) -> Any:
        """The sweep's study, with its sampler seeded for the next ask after ``asked``
        trials (each step makes a fresh sampler: one seeded alike every time would draw
        the same settings again)."""
        import optuna

        return optuna.load_study(study_name=sweep.study_name,
                                 storage=storage(self.database_url),
                                 sampler=choices.sampler(sweep.sampler,
                                                         choices.seed_for(sweep.sampler,
                                                                          sweep.seed, asked),
                                                         sweep.space),
                                 pruner=choices.pruner(sweep.pruner,
                                                       trial_steps(sweep.base_config)))

    def best_so_far(self, sweep: Sweep) -> tuple[float | None, dict[str, Any]]:
        """The best complete trial's value and settings, or (None, {}) before one."""
        st = storage(self.database_url)
        try:
            study_id = st.get_study_id_from_name(sweep.study_name)
            best = st.get_best_trial(study_id)
        except (KeyError, ValueError):
            return None, {}
        return best.value, dict(best.params)

    def jobs(self, sweep_id: int) -> dict[int, Job]:
        """The sweep's jobs by trial number."""
        with Session(self.engine) as s:
            rows = s.exec(select(Job).where(Job.sweep_id == sweep_id)).all()
            return {j.trial_number: j for j in rows if j.trial_number is not None}

    # --- stopping and resuming -----------------------------------------------------------

    def stop(self, ref: int | str, reason: str = "stopped by request") -> Sweep:
        """No new trials; queued and running trials are cancelled (running ones checkpoint
        first), and their trials told as failed by the next step."""
        sweep = self.get(ref)
        if sweep.state == "completed":
            raise InvalidTransitionError(f"sweep {sweep.name} has completed; nothing to stop")
        self._set_state(sweep.id, "stopped", reason)  # type: ignore[arg-type]
        for job in self.jobs(sweep.id).values():  # type: ignore[arg-type]
            if JobState(job.state) not in TERMINAL:
                try:
                    self.queue.cancel(job.id, f"its sweep {sweep.name} was stopped")  # type: ignore[arg-type]
                except InvalidTransitionError:
                    pass  # ended meanwhile
        return self.get(sweep.id)  # type: ignore[arg-type]

    def resume(self, ref: int | str) -> Sweep:
        """Asks for trials again (until n_trials count): a stopped or capped sweep, or a
        completed one after its n_trials were raised."""
        sweep = self.get(ref)
        if sweep.state == "running":
            raise InvalidTransitionError(f"sweep {sweep.name} is running already")
        self._set_state(sweep.id, "running", "resumed")  # type: ignore[arg-type]
        return self.get(sweep.id)  # type: ignore[arg-type]

    def _settle(self, sweep_id: int) -> None:
        """A stopped or capped sweep whose trials are all told: stepped no more."""
        with Session(self.engine) as s:
            row = s.get(Sweep, sweep_id)
            if row is not None and row.state != "running" and row.finished_at is None:
                row.finished_at = utcnow()
                s.add(row)
                s.commit()

    def _set_state(self, sweep_id: int, state: str, reason: str) -> None:
        with Session(self.engine) as s:
            row = s.get(Sweep, sweep_id)
            assert row is not None
            row.state, row.reason = state, reason[:500]
            row.finished_at = utcnow() if state == "completed" else None
            s.add(row)
            s.commit()

    # --- the dispatcher's step -----------------------------------------------------------

    def step(self) -> list[str]:
        problems: list[str] = []
        with Session(self.engine) as s:
            # A stopped or capped sweep is stepped until its last trial is told (its
            # finished_at set then): a tick never reads the studies of settled sweeps.
            sweeps = list(s.exec(select(Sweep).where(
                (Sweep.state == "running")
                | ((Sweep.state != "completed") & col(Sweep.finished_at).is_(None)))
                .order_by(col(Sweep.id))).all())
        for sweep in sweeps:
            try:
                self.step_one(sweep)
            except Exception as exc:  # noqa: BLE001 - one sweep's fault is not the queue's
                log.warning("stepping sweep %s failed", sweep.name, exc_info=True)
                problems.append(f"sweep {sweep.name}: {type(exc).__name__}: {exc}"[:300])
        return problems

    def step_one(self, sweep: Sweep) -> None:
        from optuna.trial import TrialState

        study = self.study(sweep)
        jobs = self.jobs(sweep.id)  # type: ignore[arg-type]
        running = 0
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            job = jobs.get(trial.number)
            if job is None:
                if sweep.state == "running":
                    self._queue_trial(sweep, study, trial.number, trial.params)
                    running += 1
                else:
                    self._tell(study, trial.number, TrialState.FAIL, None, "cancelled")
            elif JobState(job.state) in TERMINAL:
                self._tell_ended(study, trial, job)
            else:
                running += 1
        if sweep.state != "running":
            if running == 0:
                self._settle(sweep.id)  # type: ignore[arg-type]
            return
        counted = sum(1 for t in study.get_trials(deepcopy=False)
                      if t.state != TrialState.FAIL
                      or t.user_attrs.get(END_ATTR) not in NOT_COUNTED)
        while running < sweep.parallelism and counted < sweep.n_trials:
            if not self._room_for_trial(sweep):
                if running == 0:
                    self._set_state(sweep.id, "capped",  # type: ignore[arg-type]
                                    "its cost cap has no room for another trial")
                    self._finish_parent_run(sweep, study, "KILLED")
                return
            study.sampler = self.study(sweep, len(study.get_trials(deepcopy=False))).sampler
            trial = study.ask(distributions(sweep.space))
            if not self._queue_trial(sweep, study, trial.number, trial.params):
                return
            running += 1
            counted += 1
        if running == 0 and counted >= sweep.n_trials:
            self._set_state(sweep.id, "completed", f"{sweep.n_trials} trials done")  # type: ignore[arg-type]
            self._finish_parent_run(sweep, study, "FINISHED")

    def _room_for_trial(self, sweep: Sweep) -> bool:
        """Whether the hard budgets over the sweep (its cap, its team's) still have room for
        one more trial's estimate, counting every queued and running trial's forecast."""
        spec = self._spec(sweep, {}, 0)
        estimate = self.queue.estimate(spec)
        with Session(self.engine) as s:
            room = self.budgets.headroom(s, sweep.team, sweep.project, utcnow(), sweep.id)
        return room is None or estimate is None or estimate.cost_micros <= room

    def _spec(self, sweep: Sweep, params: dict[str, Any], number: int) -> Any:
        spec = self.queue.validate({
            "name": f"{sweep.name}-t{number}", "config": {**sweep.base_config, **params},
            "priority": sweep.priority_class, "cpus": sweep.cpus, "memory_mb": sweep.memory_mb,
            "gpus": sweep.gpus, "team": sweep.team, "project": sweep.project,
            # A trial that fails is a result, not something to try three times.
            "max_attempts": 2})
        return replace(spec, sweep_id=sweep.id, trial_number=number)

    def _queue_trial(self, sweep: Sweep, study: Any, number: int,
                     params: dict[str, Any]) -> bool:
        from optuna.trial import TrialState

        try:
            spec = self._spec(sweep, params, number)
        except ConfigError as exc:  # a sampled setting the options refuse: a failed trial
            self._tell(study, number, TrialState.FAIL, None, f"invalid: {exc}"[:200])
            return True
        try:
            self.queue.store_one(spec, idempotency_key=f"sweep-{sweep.id}-trial-{number}")
        except BudgetExceeded as exc:
            self._tell(study, number, TrialState.FAIL, None, "refused")
            log.info("sweep %s: trial %s refused: %s", sweep.name, number, exc)
            return False
        return True

    def _tell_ended(self, study: Any, trial: Any, job: Job) -> None:
        from optuna.trial import TrialState

        state = JobState(job.state)
        if state is JobState.SUCCEEDED:
            value = trial.user_attrs.get(OBJECTIVE_ATTR)
            if value is None and trial.intermediate_values:
                value = trial.intermediate_values[max(trial.intermediate_values)]
            if value is None:
                self._tell(study, trial.number, TrialState.FAIL, None, "no objective")
            else:
                self._tell(study, trial.number, TrialState.COMPLETE, float(value), "succeeded")
        elif state is JobState.PRUNED:
            self._tell(study, trial.number, TrialState.PRUNED, None, "pruned")
        else:
            self._tell(study, trial.number, TrialState.FAIL, None, state.value)

    @staticmethod
    def _tell(study: Any, number: int, state: Any, value: float | None, end: str) -> None:
        import optuna
        from optuna.trial import TrialState

        storage_, trial_id = study._storage, study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, number)
        try:
            storage_.set_trial_user_attr(trial_id, END_ATTR, end)
            if state == TrialState.COMPLETE:
                study.tell(number, value)
            else:
                study.tell(number, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError,
                RuntimeError) as exc:
            # Told already (by a leader that died after telling): nothing left to do.
            log.info("trial %s of %s was told already: %s", number, study.study_name, exc)

    def _finish_parent_run(self, sweep: Sweep, study: Any, status: str) -> None:
        if self.tracker is None or sweep.mlflow_run_id is None:
            return
        from app.sweeps.results import summary_files

        try:
            with tempfile.TemporaryDirectory() as tmp:
                metrics, files = summary_files(self, sweep, study, Path(tmp))
                self.tracker.end_run(sweep.mlflow_run_id, metrics, files, status)
        except Exception as exc:  # noqa: BLE001 - the study's result stands without it
            log.warning("sweep %s: ending its MLflow run failed: %s", sweep.name, exc)
