"""rnnbench._optuna: what rnnbench needs of Optuna beyond its public API. These fail first when an
Optuna upgrade changes one of the private parts (or error messages) it relies on."""

import optuna
import pytest
from optuna.trial import TrialState

from rnnbench import _optuna


@pytest.fixture
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name="s:rnn", storage=_optuna.storage(tmp_path / "studies" / "s.journal")
    )


def test_the_journal_is_one_file_that_another_process_opens_by_its_path(tmp_path, study):
    study.ask()
    again = optuna.load_study(
        study_name="s:rnn", storage=_optuna.storage(tmp_path / "studies" / "s.journal")
    )
    assert len(again.trials) == 1


def test_a_running_trial_opens_by_its_number_with_what_it_reported(study):
    study.ask()
    asked = study.ask()
    asked.report(0.5, 10)
    trial, reported = _optuna.open_trial(study, asked.number)
    assert reported == {10: 0.5}
    trial.report(0.7, 20)
    assert study.trials[asked.number].intermediate_values == {10: 0.5, 20: 0.7}
    assert not trial.should_prune()  # (the study's default pruner, on a trial it can see)


def test_an_error_is_attached_to_an_asked_or_a_frozen_trial(study):
    asked = study.ask()
    _optuna.set_error(study, asked, "out of luck")
    frozen = study.get_trials(deepcopy=False)[0]
    _optuna.set_error(study, frozen, "still out of luck")
    assert study.trials[0].user_attrs == {"error": "still out of luck"}


def test_a_trial_told_twice_is_already_told_a_valueerror_as_optunas_own(study):
    trial = study.ask()
    _optuna.tell(study, trial.number, 0.5)
    with pytest.raises(_optuna.AlreadyTold):
        _optuna.tell(study, trial.number, state=TrialState.FAIL)
    assert issubclass(_optuna.AlreadyTold, ValueError)
    with pytest.raises(
        ValueError, match="not been created"
    ):  # (other errors pass through as they were)
        _optuna.tell(study, 99, 0.5)


def _grid_study(tmp_path, name):
    study = optuna.create_study(
        study_name=name,
        storage=_optuna.storage(tmp_path / f"{name}.journal"),
        sampler=optuna.samplers.GridSampler({"lr": [0.1]}),
    )
    return study, study.ask({"lr": optuna.distributions.CategoricalDistribution([0.1])})


def test_the_grid_samplers_stop_after_its_last_point_is_dropped_and_the_trial_told(tmp_path):
    raw, trial = _grid_study(tmp_path, "raw")
    with pytest.raises(RuntimeError, match="stop"):  # what Optuna does, outside optimize()...
        raw.tell(trial.number, 0.5)
    assert raw.trials[0].state == TrialState.COMPLETE  # ...after recording the outcome
    study, trial = _grid_study(tmp_path, "shim")
    _optuna.tell(study, trial.number, 0.5)
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].value == 0.5
