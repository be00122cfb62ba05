"""`tastemaker.tuning` and `tastemaker tune`: validation carve-outs of training data only, seeded,
spaces checked against each model's config, best settings written as TOML that `train` reads."""

from __future__ import annotations

import dataclasses
import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

import tastemaker.tuning as tuning
from tastemaker.cli.main import model_config, train
from tastemaker.cli.tune import tune as tune_command
from tastemaker.data import Dataset, Interactions, Split, validation_split
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.protocols import rating_scores
from tastemaker.models import create_model, get_model_class, model_names
from tastemaker.models.registry import BUILTIN
from tastemaker.testing import synthetic_implicit, synthetic_ratings
from tastemaker.tuning import (
    DEFAULT_SPACES,
    SEARCH_SPACES,
    SearchSpace,
    read_tune_file,
    resolve_space,
    training_part,
    tune,
)

SMALL_MF = {"n_factors": {"low": 2, "high": 8}, "n_epochs": {"low": 2, "high": 6},
            "learning_rate": {"low": 0.005, "high": 0.05, "log": True}, "reg": {"low": 0.01, "high": 0.2}}


@pytest.fixture(scope="module")
def ratings() -> Interactions:
    return synthetic_ratings(n_users=60, n_items=40, per_user=12, seed=3)


class _TestFold:
    """Stands in for a test fold: any use at all fails the test."""

    def _touched(self, what: str):
        raise AssertionError(f"the tuner touched the test fold ({what})")

    def __getattribute__(self, name: str):
        if name == "_touched":
            return object.__getattribute__(self, name)
        self._touched(f".{name}")

    def __len__(self):
        self._touched("len()")

    def __iter__(self):
        self._touched("iter()")

    def __bool__(self):
        self._touched("bool()")

    def __array__(self, *args, **kwargs):
        self._touched("np.asarray()")


def _without_test_folds(dataset: Dataset) -> Dataset:
    """The same data set, whose official splits hand out their real training half and an untouchable test half."""
    real = dataset.split_reader

    def reader(name: str) -> Split:
        return Split(real(name).train, _TestFold())

    return dataclasses.replace(dataset, split_reader=reader, _cache={})


def _recording_models(monkeypatch) -> list:
    fitted: list = []
    real = tuning.create_model

    def create(name, config=None, **params):
        model = real(name, config, **params)
        fitted.append(model)
        return model

    monkeypatch.setattr(tuning, "create_model", create)
    return fitted


def _pairs(data: Interactions) -> set[tuple[int, int]]:
    users, items = np.asarray(data.user_vocab.ids)[data.user_idx], np.asarray(data.item_vocab.ids)[data.item_idx]
    return set(zip(users.tolist(), items.tolist(), strict=True))


def _model_pairs(model) -> set[tuple[int, int]]:
    m = model.train_matrix.tocoo()
    users, items = np.asarray(model.user_vocab.ids)[m.row], np.asarray(model.item_vocab.ids)[m.col]
    return set(zip(users.tolist(), items.tolist(), strict=True))


# --- the test fold is never read -------------------------------------------------------------------

def test_tuning_on_u1_never_reads_the_test_fold_and_fits_only_training_rows(ml100k, monkeypatch):
    guarded = _without_test_folds(ml100k)
    fitted = _recording_models(monkeypatch)
    train = training_part(guarded, "u1")
    result = tune("baseline", train, n_trials=3, seed=0)

    assert result.n_trials == 3 and len(fitted) == 3
    assert result.data_fingerprint == train.fingerprint() and result.data_name == "ml-100k:u1.base"
    fit_part, val_part = validation_split(train, method="random", fraction=0.2, seed=0)
    train_pairs, test_pairs = _pairs(train), _pairs(ml100k.split("u1").test)
    for model in fitted:
        # every fitted model saw exactly the fit part of the carve-out: training rows, no validation, no test
        assert model.data_info["fingerprint"] == fit_part.fingerprint()
        seen = _model_pairs(model)
        assert seen <= train_pairs and not seen & test_pairs and not seen & _pairs(val_part)
    assert fitted[0].data_info["interactions"] == len(fit_part) < len(train)
    assert 0.85 < result.best_value < 1.05


def test_the_guard_itself_catches_a_tuner_that_reads_the_test_fold(ml100k):
    guarded = _without_test_folds(ml100k)
    test = guarded.split("u1").test
    with pytest.raises(AssertionError, match="touched the test fold"):
        rating_scores(create_model("baseline").fit(guarded.split("u1").train), test)


def test_tune_refuses_a_dataset_so_no_test_data_is_in_reach(ml100k):
    with pytest.raises(DataError, match="training interactions only"):
        tune("baseline", ml100k, n_trials=1)


def test_training_part_resolves_splits_and_protocols(ratings):
    assert training_part(ratings, "full") is ratings
    holdout = training_part(ratings, "rating-holdout")
    assert len(holdout) == len(ratings) - round(0.2 * len(ratings))
    with pytest.raises(ConfigError, match="needs the official splits u1, u2"):
        training_part(ratings, "rating-folds")
    with pytest.raises(ConfigError, match=r"unknown split 'u9'.*topn-holdout"):
        training_part(ratings, "u9")


# --- search behaviour ------------------------------------------------------------------------------

def test_same_seed_same_trials_other_seed_other_trials(ratings):
    kw = dict(n_trials=4, space=SMALL_MF, start_from_defaults=False)
    a, b = tune("biased_mf", ratings, seed=0, **kw), tune("biased_mf", ratings, seed=0, **kw)
    c = tune("biased_mf", ratings, seed=1, **kw)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in a.rows(sort=False)]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in b.rows(sort=False)]
    assert a.best_params == b.best_params and a.best_value == b.best_value
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_objective_is_the_validation_score_and_the_first_trial_is_the_defaults(ratings):
    result = tune("biased_mf", ratings, n_trials=2, space=SMALL_MF | {"n_factors": {"low": 2, "high": 100}})
    defaults = create_model("biased_mf").config
    first = result.trials[0]
    # the defaults inside the space are enqueued (n_epochs=25 lies outside it, so it is sampled)
    assert (first.params["n_factors"], first.params["learning_rate"], first.params["reg"]) == (
        defaults.n_factors, defaults.learning_rate, defaults.reg)
    assert 2 <= first.params["n_epochs"] <= 6
    fit_part, val_part = validation_split(ratings, method="random", fraction=0.2, seed=0)
    model = create_model("biased_mf", tuning._nest(first.params)).fit(fit_part)
    assert first.value == pytest.approx(rating_scores(model, val_part)[0]["rmse"])
    assert first.metrics["mae"] == pytest.approx(rating_scores(model, val_part)[0]["mae"])
    best = min(t.value for t in result.trials)
    assert result.best_value == best and result.direction == "minimize"


def test_repeats_average_several_carve_outs(ratings):
    space = {"n_epochs": {"choices": [5]}}
    result = tune("baseline", ratings, n_trials=1, space=space, validation={"method": "random", "repeats": 2})
    expected = []
    for seed in (0, 1):
        fit_part, val_part = validation_split(ratings, method="random", fraction=0.2, seed=seed)
        expected.append(rating_scores(create_model("baseline", n_epochs=5).fit(fit_part), val_part)[0]["rmse"])
    assert result.best_value == pytest.approx(np.mean(expected))
    assert result.validation == {"method": "random", "fraction": 0.2, "seed": 0, "repeats": 2}


def test_the_pruner_stops_poor_trials_between_carve_outs(ratings):
    space = {"n_factors": {"low": 2, "high": 8}, "n_epochs": {"low": 1, "high": 6},
             "learning_rate": {"low": 0.001, "high": 0.05, "log": True}}
    result = tune("biased_mf", ratings, n_trials=12, space=space, validation={"repeats": 3}, pruner=True)
    states = [t.state for t in result.trials]
    assert set(states) == {"complete", "pruned"} and states[:5] == ["complete"] * 5  # 5 startup trials
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert all(t.value is None and t.metrics["rmse"] > result.best_value for t in pruned)
    assert result.best_value == min(t.value for t in result.trials if t.state == "complete")


def test_topn_maximises_ndcg_and_starts_from_the_defaults():
    data = synthetic_implicit(n_users=80, n_items=50, per_user=10, seed=1)
    result = tune("ease", data, protocol_kind="topn", n_trials=3, seed=0)
    assert result.metric == "ndcg@10" and result.direction == "maximize"
    assert result.trials[0].params == {"l2": 300.0, "weighting": "value"}
    assert result.best_value == max(t.value for t in result.trials) >= result.trials[0].value
    assert {"recall@10", "auc", "coverage@10"} <= set(result.trials[0].metrics)
    assert result.validation["method"] == "user_holdout"


def test_timeout_stops_after_the_first_trial(ratings):
    result = tune("baseline", ratings, n_trials=5, timeout=1e-9)
    assert result.n_trials == 1


def test_a_trial_that_fails_is_recorded_and_the_search_goes_on(ratings, monkeypatch):
    from tastemaker.models.baseline import Baseline

    real_fit = Baseline._fit

    def fit(self, data):
        if self.config.n_epochs == 3:
            raise ConfigError("diverged (planted)")
        return real_fit(self, data)

    monkeypatch.setattr(Baseline, "_fit", fit)
    result = tune("baseline", ratings, n_trials=2, space={"n_epochs": {"choices": [3, 4]}},
                  start_from_defaults=False, seed=0)
    # seed 0 samples n_epochs 4, then 3
    assert [(t.params["n_epochs"], t.state) for t in result.trials] == [(4, "complete"), (3, "fail")]
    failed = result.trials[1]
    assert "diverged (planted)" in failed.error and failed.value is None and failed.metrics == {}
    assert result.best_params == {"n_epochs": 4} and result.best_trial == 0
    assert result.rows()[-1]["state"] == "fail"
    with pytest.raises(ConfigError, match=r"no trial of baseline finished.*diverged"):
        tune("baseline", ratings, n_trials=2, space={"n_epochs": {"choices": [3]}})


# --- spaces ----------------------------------------------------------------------------------------

def test_a_user_space_replaces_the_default_and_fixed_values_hold(ratings, monkeypatch):
    fitted = _recording_models(monkeypatch)
    space = {"n_factors": {"choices": [3]}, "n_epochs": 4, "reg": {"low": 0.01, "high": 0.02}}
    result = tune("biased_mf", ratings, n_trials=3, space=space, params={"init_std": 0.05})
    assert result.searched == ["n_factors", "reg"]
    for trial in result.trials:
        assert set(trial.params) == {"n_factors", "n_epochs", "reg"}
        assert trial.params["n_factors"] == 3 and trial.params["n_epochs"] == 4
        assert 0.01 <= trial.params["reg"] <= 0.02
    assert {m.config.init_std for m in fitted} == {0.05}
    assert {m.config.learning_rate for m in fitted} == {create_model("biased_mf").config.learning_rate}
    assert result.best_params["init_std"] == 0.05 and result.best_params["n_factors"] == 3


def test_nested_settings_by_dotted_name_from_a_toml_file(tmp_path, ratings, monkeypatch):
    path = tmp_path / "space.toml"
    path.write_text('[model]\nname = "item_knn"\n\n[model.params]\nk = 20\n\n[tune.space]\n'
                    'baseline.reg_items = {low = 1.0, high = 5.0}\nsimilarity = {choices = ["cosine", "msd"]}\n')
    spec = read_tune_file(path)
    assert spec.name == "item_knn" and spec.params == {"k": 20}
    fitted = _recording_models(monkeypatch)
    result = tune(spec.name, ratings, n_trials=2, space=spec.space, params=spec.params)
    assert all(1.0 <= m.config.baseline.reg_items <= 5.0 and m.config.k == 20 for m in fitted)
    assert {m.config.similarity for m in fitted} <= {"cosine", "msd"}
    assert set(result.best_params) == {"k", "baseline", "similarity"}
    assert set(result.best_params["baseline"]) == {"reg_items"}


def test_fixed_params_leave_the_default_space():
    space = resolve_space("biased_mf", None, {"n_factors": 10})
    assert "n_factors" not in space.specs and "reg" in space.specs


@pytest.mark.parametrize(("space", "message"), [
    ({"n_factor": {"low": 1, "high": 5}}, "'n_factor' is not a setting of BiasedMFConfig; known settings: .*n_factors"),
    ({"n_factors": {"low": 0, "high": 5}}, r"n_factors = 0 .* is not allowed .*greater than or equal to 1"),
    ({"n_factors": {"low": 9, "high": 5}}, "low .* must be below high"),
    ({"reg": {"low": 0.0, "high": 1.0, "log": True}}, "log range needs low > 0"),
    ({"reg": {"low": 0.1}}, "expected {low = …, high = …}"),
    ({"reg": {"low": 0.1, "high": 1.0, "scale": "log"}}, "expected {low = …, high = …}"),
    ({"reg": {"choices": []}}, "choices must be a non-empty list"),
    ({"reg": {"choices": [0.1], "low": 0}}, "takes no other keys"),
    ({"reg": {"choices": [[0.1]]}}, "strings, numbers or booleans"),
    ({"n_epochs": 3}, "nothing to search"),
    ({"baseline": {}}, "empty table"),
    ({"init_std.x": {"low": 0.1, "high": 1.0}}, "'init_std.x' is not a setting of init_std"),
])
def test_bad_spaces_are_config_errors_before_any_trial(ratings, space, message, monkeypatch):
    fitted = _recording_models(monkeypatch)
    with pytest.raises(ConfigError, match=message):
        tune("biased_mf", ratings, n_trials=2, space=space)
    assert fitted == []


def test_other_bad_settings_are_config_errors(ratings):
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; known models: .*biased_mf"):
        tune("nope", ratings, n_trials=1)
    with pytest.raises(ConfigError, match="rating_blend has no default search space"):
        tune("rating_blend", ratings, n_trials=1)
    with pytest.raises(ConfigError, match="set both as a fixed parameter and in the search space"):
        tune("biased_mf", ratings, n_trials=1, space={"reg": {"low": 0.1, "high": 0.2}}, params={"reg": 0.1})
    with pytest.raises(ConfigError, match="metric 'ndcg@10' is not measured by the rating protocol"):
        tune("biased_mf", ratings, n_trials=1, metric="ndcg@10")
    with pytest.raises(ConfigError, match="does not predict ratings"):
        tune("ease", ratings, n_trials=1)
    with pytest.raises(ConfigError, match="unknown validation method"):
        tune("baseline", ratings, n_trials=1, validation={"method": "u1.test"})
    with pytest.raises(ConfigError, match="unknown validation setting"):
        tune("baseline", ratings, n_trials=1, validation={"folds": 3})


def test_every_default_space_belongs_to_a_registered_model():
    assert set(DEFAULT_SPACES) <= set(model_names())
    assert set(SEARCH_SPACES) == set(DEFAULT_SPACES)
    # the shipped models (other tests register their own, e.g. "_test_recorder", into the same registry)
    untuned = set(BUILTIN) - set(DEFAULT_SPACES)
    assert untuned == {"rating_blend", "rank_blend"}


@pytest.mark.parametrize("name", [n for n in DEFAULT_SPACES if n in model_names(available=True)])
def test_default_space_fits_the_model_config(name):
    """Every parameter is a setting of the model; every range end and choice is a valid value."""
    space = resolve_space(name)  # raises a ConfigError naming the parameter otherwise
    assert isinstance(space, SearchSpace) and space.searched


def test_search_spaces_sample_valid_configs():
    import optuna

    for name, sample in SEARCH_SPACES.items():
        if name not in model_names(available=True):
            continue
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(3):
            params = tuning._nest(sample(study.ask()))
            config = get_model_class(name).Config.parse(params).to_dict()
            for key, value in params.items():  # every sampled setting lands in the config as sampled
                if not isinstance(value, dict):
                    assert config[key] == value, (name, key)


# --- TOML and the command line ----------------------------------------------------------------------

def test_best_toml_round_trips_into_trains_reader(ratings, tmp_path):
    result = tune("item_knn", ratings, n_trials=2, space={"baseline.reg_items": {"low": 1.0, "high": 5.0},
                                                           "k": {"low": 5, "high": 30}}, params={"min_k": 2})
    path = result.to_toml(tmp_path / "best.toml")
    text = path.read_text()
    assert text.startswith("# tastemaker tune: best of 2 trials")
    assert f"sha256 {ratings.fingerprint()}" in text and "validation: method=random, fraction=0.2" in text
    name, params = model_config(None, path)
    assert name == "item_knn" and params == result.best_params
    assert params["min_k"] == 2 and 1.0 <= params["baseline"]["reg_items"] <= 5.0
    assert create_model(name, params).config == create_model("item_knn", result.best_params).config


def _cli():
    group = click.Group("tastemaker")
    group.add_command(tune_command)
    group.add_command(train)
    return group


def test_cli_tune_then_train_with_the_written_toml(data_root, tmp_path, monkeypatch):
    import mlflow

    import tastemaker.data

    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data_root))
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    real_load = tastemaker.data.load_dataset
    monkeypatch.setattr(tastemaker.data, "load_dataset", lambda *a, **kw: _without_test_folds(real_load(*a, **kw)))
    runner = CliRunner()
    best = tmp_path / "best.toml"
    result = runner.invoke(_cli(), ["tune", "--dataset", "ml-100k", "--split", "u1", "--model", "baseline",
                                    "--trials", "3", "--out", str(best), "--track"],
                           obj={"quiet": True}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "top 3 of 3 trials by validation rmse" in result.output and "best: trial" in result.output
    assert "ml-100k:u1.base" in result.output and best.is_file()
    name, params = model_config(None, best)
    assert name == "baseline" and set(params) == {"n_epochs", "reg_users", "reg_items"}

    monkeypatch.setattr(tastemaker.data, "load_dataset", real_load)
    result = runner.invoke(_cli(), ["train", "--dataset", "ml-100k", "--split", "u1", "--config", str(best),
                                    "--out", str(tmp_path / "m")], obj={"quiet": True}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert {k: manifest["config"][k] for k in params} == params

    mlflow.set_tracking_uri(uri)
    runs = [r for r in mlflow.search_runs(experiment_names=["tastemaker"], output_format="list")
            if r.data.tags.get("command") == "tune"]
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["model"] == "baseline" and float(run.data.params["best.reg_users"]) == params["reg_users"]
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "rmse")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert run.data.metrics["best_rmse"] == pytest.approx(min(m.value for m in history))


def test_cli_rejects_a_bad_space_in_the_config_file(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data_root))
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname = "biased_mf"\n\n[tune.space]\nlr = {low = 0.001, high = 0.01}\n')
    result = CliRunner().invoke(_cli(), ["tune", "--config", str(bad), "--trials", "1"], obj={"quiet": True})
    assert isinstance(result.exception, ConfigError)
    assert "'lr' is not a setting of BiasedMFConfig" in str(result.exception)
    bad.write_text('[model]\nname = "biased_mf"\n\n[tune]\nspace = {}\ntrials = 3\n')
    result = CliRunner().invoke(_cli(), ["tune", "--config", str(bad)], obj={"quiet": True})
    assert isinstance(result.exception, ConfigError) and "unexpected tune.trials" in str(result.exception)
