"""A trial's side of its study, in the trainer's process: each evaluation reported to Optuna
(``trial.report``) with the pruner's verdict, and the final objective kept on the trial for
the dispatcher to tell the study once the job has ended well."""

from __future__ import annotations

import logging
from typing import Any

from app.sweeps import choices
from app.sweeps.storage import storage

log = logging.getLogger(__name__)

# The trial user attribute holding the final objective until the dispatcher tells the study.
OBJECTIVE_ATTR = "oppen_objective"


class TrialReporter:
    """Implements app.training.objectives.TrialHooks for one trial of one study."""

    def __init__(self, database_url: str, study_name: str, trial_number: int, objective: str,
                 direction: str, pruner: str, steps: int) -> None:
        import optuna

        self.objective, self.direction = objective, direction
        self._storage = storage(database_url)
        self._study = optuna.load_study(study_name=study_name, storage=self._storage,
                                        pruner=choices.pruner(pruner, steps))
        self._trial_id = self._storage.get_trial_id_from_study_id_trial_number(
            self._study._study_id, trial_number)
        self.pruned_at: int | None = None

    def _trial(self) -> Any:
        import optuna

        return optuna.trial.Trial(self._study, self._trial_id)

    def report(self, value: float, step: int) -> bool:
        import optuna

        trial = self._trial()
        try:
            trial.report(value, step)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # the study already ended this trial (its sweep was stopped)
        if trial.should_prune():
            self.pruned_at = step
            return True
        return False

    def finish(self, value: float) -> None:
        import optuna

        try:
            self._storage.set_trial_user_attr(self._trial_id, OBJECTIVE_ATTR, float(value))
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("the study already ended this trial; its objective %s is not kept",
                        value)
