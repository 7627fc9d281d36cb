"""Next-best-action: the catalogue's validation, the policy's guarantees, and value against the generator's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscope import catalogue as catalogue_lib
from leadscope.catalogue import CatalogueError
from leadscope.cli import app
from training import nba, nba_eval, policy, population, tracking, uplift

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


def _write(tmp_path, text: str):
    p = tmp_path / "actions.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("cost: 0.5", "cost: -0.5"), "actions[1].cost: Input should be greater than or equal to 0"),
        (
            ("cooldown_days: 14", "cooldown_days: 14\n    colour: red"),
            "actions[1].colour: Extra inputs are not permitted",
        ),
        (("id: sms_coupon", "id: email_offer"), "action ids repeated: email_offer"),
        (("channel: do_nothing", "channel: email"), "exactly one action must have channel do_nothing"),
        (("channel: sms", "channel: carrier_pigeon"), "actions[1].channel"),
        (("contacts_per_week: 2", "contacts_per_week: -1"), "contacts_per_week"),
    ],
)
def test_a_bad_catalogue_is_refused_with_a_clear_message(tmp_path, change, message) -> None:
    text = catalogue_lib.DEFAULT.read_text()
    assert change[0] in text
    with pytest.raises(CatalogueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        catalogue_lib.load(_write(tmp_path, text.replace(change[0], change[1], 1)))


def test_train_nba_refuses_a_bad_catalogue_from_the_command_line(prepared, tmp_path) -> None:
    bad = _write(tmp_path, catalogue_lib.DEFAULT.read_text().replace("cost: 8.0", "cost: -8.0"))
    env = {"LEADSCOPE_HOME": str(prepared.settings.home), "LEADSCOPE_ACTIONS_CATALOGUE": str(bad)}
    res = CliRunner().invoke(app, ["train", "nba"], env=env)
    assert res.exit_code == 2 and "actions[2].cost" in res.output


def _context(n: int, A: int, **over) -> policy.Context:
    base = {
        "stage": np.array(["active"] * n),
        "consent": {k: np.ones(n, bool) for k in ("email", "sms", "ads")},
        "reach": {k: np.ones(n, bool) for k in ("email", "phone", "wechat")},
        "days_since": np.full((n, A), np.inf),
        "count_30d": np.zeros((n, A)),
        "contacts_7d": np.zeros(n),
    }
    return policy.Context(**(base | over))


def test_negative_uplift_is_never_recommended_whatever_the_value() -> None:
    cat = catalogue_lib.load()
    acts = cat.contacts
    n, A = 500, len(acts)
    rng = np.random.default_rng(0)
    up = rng.normal(0, 0.05, (n, A))
    value = rng.uniform(0, 10_000, n)  # huge values: a negative uplift times a huge value is a huge loss
    ok = policy.eligible(cat, acts, _context(n, A))
    g = policy.gains(up, value, np.array([a.cost for a in acts]), ok)
    d = policy.decide(g, nothing=A)
    picked = d != A
    assert picked.any() and (up[np.flatnonzero(picked), d[picked]] > 0).all()
    assert (d[(up <= 0).all(axis=1)] == A).all()
    budget = policy.allocate(
        np.column_stack([g, np.zeros(n)]),
        np.r_[[a.cost for a in acts], 0.0],
        [a.channel for a in acts] + ["do_nothing"],
        1e9,
        {},
        A,
    )
    assert (up[np.flatnonzero(budget != A), budget[budget != A]] > 0).all()


def test_consent_reach_stage_cooldown_and_caps_are_respected() -> None:
    cat = catalogue_lib.load()
    acts = cat.contacts
    ids = [a.id for a in acts]
    A, n = len(acts), 6
    up = np.full((n, A), 0.2)  # everything pays for everyone
    days = np.full((n, A), np.inf)
    days[3, ids.index("email_offer")] = 2.0  # emailed 2 days ago: 7-day cooldown
    count = np.zeros((n, A))
    count[4, ids.index("sms_coupon")] = 2  # two SMS this month: max 2
    ctx = _context(
        n,
        A,
        consent={"email": np.array([0, 1, 1, 1, 1, 1], bool), "sms": np.ones(n, bool), "ads": np.ones(n, bool)},
        reach={"email": np.ones(n, bool), "phone": np.array([1, 0, 1, 1, 1, 1], bool), "wechat": np.ones(n, bool)},
        stage=np.array(["active", "active", "lapsed", "active", "active", "active"]),
        days_since=days,
        count_30d=count,
        contacts_7d=np.array([0, 0, 0, 0, 0, 2]),  # the catalogue allows 2 contacts a week
    )
    ok = policy.eligible(cat, acts, ctx)
    assert not ok[0, ids.index("email_offer")] and not ok[0, ids.index("referral_invite")]  # no e-mail consent
    assert not ok[1, ids.index("sms_coupon")] and not ok[1, ids.index("sales_call")]  # no phone
    assert not ok[2, ids.index("sales_call")]  # lapsed: sales calls are for prospects and active customers
    assert not ok[3, ids.index("email_offer")] and ok[3, ids.index("sms_coupon")]
    assert not ok[4, ids.index("sms_coupon")]
    assert not ok[5].any()  # at the weekly contact cap only do-nothing is left
    for i in range(n):
        for j, a in enumerate(acts):
            assert ok[i, j] == (policy.why_not(cat, a, j, ctx, i) is None)
    d = policy.decide(policy.gains(up, np.full(n, 100.0), np.array([a.cost for a in acts]), ok), nothing=A)
    assert d[5] == A and all(ok[i, d[i]] for i in range(5))


def test_budget_and_channel_capacity_hold() -> None:
    rng = np.random.default_rng(1)
    n, A = 2_000, 4
    g = np.column_stack([rng.uniform(-1, 5, (n, A)), np.zeros(n)])
    costs = np.array([1.0, 2.0, 0.5, 3.0, 0.0])
    channels = ["email", "sms", "wechat", "sales_call", "do_nothing"]
    chosen = policy.allocate(g, costs, channels, budget=700.0, capacity={"sales_call": 25, "sms": 100}, nothing=A)
    assert costs[chosen].sum() <= 700.0 and (chosen == 3).sum() <= 25 and (chosen == 1).sum() <= 100
    assert (g[np.arange(n), chosen][chosen != A] > 0).all()
    unconstrained = policy.allocate(g, costs, channels, budget=1e12, capacity={}, nothing=A)
    assert g[np.arange(n), unconstrained].sum() >= g[np.arange(n), chosen].sum()


def test_policy_value_against_truth_and_off_policy_estimates(prepared) -> None:
    # broken: the policy would be no better than mailing everyone, or its off-policy estimate would mislead
    settings = prepared.settings
    pop = population.load(settings)
    values = nba_eval.evaluate(settings, pop)
    print(
        f"\ntrue incremental value per held-out customer: ours {values['ours']:.3f}, oracle {values['oracle']:.3f}, "
        f"best single ({values['best_single_action_is']}) {values['best_single_action']:.3f}, "
        f"random {values['random']:.3f}, rank-by-propensity {values['rank_by_propensity']:.3f}"
    )
    assert values["oracle"] >= values["ours"] > max(values["best_single_action"], values["random"], 0)
    assert values["ours"] > values["rank_by_propensity"]
    bundle = tracking.load_champion(settings, nba.NAME).model
    ope = nba_eval.ope_against_truth(
        settings, nba.logged(settings), bundle, prepared.metrics["nba"]["best_single_action"]
    )
    o = ope["ours"]
    print(f"off-policy, ours: IPS {o['ips']:.3f}, DR {o['dr']:.3f} ± {o['dr_se']:.3f}, true {o['true']:.3f}")
    # a company this small leaves the estimate noisy: the truth must sit inside its 99% interval
    assert abs(o["dr"] - o["true"]) <= 2.58 * o["dr_se"]
    assert o["dr_se"] < o["ips_se"]  # the outcome model takes variance out of plain IPS


def test_off_policy_estimates_are_unbiased_over_fresh_randomisations(prepared) -> None:
    # broken: DR would be off by more than its own noise once one log's luck is averaged out
    settings = prepared.settings
    bundle = tracking.load_champion(settings, nba.NAME).model
    k = 40
    rep = nba_eval.ope_replicates(
        settings, nba.logged(settings), bundle, prepared.metrics["nba"]["best_single_action"], replicates=k
    )
    for name in ("ours", "random", "best_single_action"):
        o = rep[name]
        print(f"{name}: true {o['true']:.3f}, mean DR {o['dr_mean']:.3f}, one log's SE {o['dr_se_one_log']:.3f}")
        assert abs(o["dr_mean"] - o["true"]) <= 3.0 * o["dr_se_one_log"] / np.sqrt(k)
        # one log's reported standard error is what its error really spreads by
        assert 0.6 < o["dr_error_sd_one_log"] * abs(o["true"]) / o["dr_se_one_log"] < 1.5
    assert rep["do_nothing"]["dr_mean"] == 0.0


def test_training_logged_metrics_and_registered(prepared) -> None:
    m = prepared.metrics["nba"]
    from mlflow.tracking import MlflowClient

    from training import tracking

    tracking.configure(prepared.settings)
    run = MlflowClient().get_run(m["run_id"])
    assert run.data.params["feature_service"] == "uplift_v1"
    log_rows = len(pd.read_parquet(prepared.settings.raw_dir / "campaigns.parquet"))
    assert run.data.params["log_rows"] == str(log_rows) and float(run.data.params["log_sample_share"]) == 1.0
    assert any(k.endswith("_qini") for k in run.data.metrics) and "ope_ours_dr" in run.data.metrics
    assert tracking.alias_version(prepared.settings, "uplift") == m["version"]
    assert isinstance(pd.DataFrame(m["uplift"]).T, pd.DataFrame)


def test_a_big_campaign_log_is_sampled_by_whole_customers_before_the_join(prepared) -> None:
    # broken: a log of millions of rows joined and fitted whole (the 200k company's uplift step took 11 min), or a
    # sample that splits customers, skews the treated share or changes the features of the rows it keeps
    settings = prepared.settings
    whole = nba.logged(settings)
    target = len(whole) // 3
    part = nba.logged(settings, max_rows=target)
    assert part.attrs["log_rows"] == len(whole) and part.attrs["sample_share"] == pytest.approx(1 / 3, rel=0.01)
    assert 0.85 * target < len(part) < 1.15 * target
    kept = set(part["customer_id"])
    assert (whole["customer_id"].isin(kept).sum()) == len(part)  # every row of a kept customer, no other
    assert abs(part["treated"].mean() - whole["treated"].mean()) < 0.02
    held = ~uplift.split_customers(pd.Series(sorted(kept)))
    assert 0.25 < held.mean() < 0.35  # independent of the held-out split (30 % of customers)
    key = ["customer_id", "event_timestamp", "action_id"]
    mine = whole[whole["customer_id"].isin(kept)].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(part.sort_values(key).reset_index(drop=True), mine[part.columns])
    assert nba.logged(settings, max_rows=len(whole)).attrs["sample_share"] == 1.0


def test_train_nba_without_a_campaign_log_exits_2_saying_so(tmp_path) -> None:
    res = CliRunner().invoke(app, ["train", "nba"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code == 2 and "no campaigns table" in res.output


def _randomised_log(n: int, seed: int) -> pd.DataFrame:
    """A randomised log with known uplift: action `a` lifts response by 0.15 where x0 > 0 and lowers it by 0.05
    elsewhere; action `b` does nothing for anyone; x1 … x4 are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    action = rng.choice(["a", "b"], n)
    treated = rng.random(n) < 0.5
    true = np.where(action == "a", np.where(x[:, 0] > 0, 0.15, -0.05), 0.0)
    p = 0.2 + 0.05 * np.tanh(x[:, 1]) + treated * true
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    return frame.assign(
        customer_id=[f"C{i % (n // 3):06d}" for i in range(n)],
        action_id=action,
        treated=treated.astype(int),
        outcome=(rng.random(n) < p).astype(int),
        value=50.0,
    )


def test_actions_fitted_side_by_side_give_the_bundle_one_worker_fits() -> None:
    # broken: threads sharing the pooled control arm's cached fits (a race fits it twice or reads it half-made),
    # or metrics filed under the wrong action, would change a booster or a number here
    frame = _randomised_log(24_000, seed=5)
    features = [f"x{i}" for i in range(5)]
    one = uplift.fit_bundle(frame, features, threads=1, seed=0, workers=1, learner="auto")
    two = uplift.fit_bundle(frame, features, threads=1, seed=0, workers=2, learner="auto")
    assert list(two.actions) == list(one.actions) == ["a", "b"]
    for action, model in one.actions.items():
        assert two.actions[action].kind == model.kind
        assert [b.model_to_string() for b in two.actions[action].boosters] == [
            b.model_to_string() for b in model.boosters
        ]
    assert two.metrics == one.metrics


def test_the_dr_learner_recovers_a_known_uplift_and_stays_flat_where_there_is_none() -> None:
    frame = _randomised_log(60_000, seed=3)
    bundle = uplift.fit_bundle(frame, [f"x{i}" for i in range(5)], threads=1, seed=0)
    assert {m.kind for m in bundle.actions.values()} == {"dr_learner"}
    probe = pd.DataFrame(np.random.default_rng(9).normal(size=(4000, 5)), columns=[f"x{i}" for i in range(5)])
    X = bundle.encoder.transform(probe).astype(np.float32)
    up = bundle.uplift(X, ["a", "b"])
    truth_a = np.where(probe["x0"] > 0, 0.15, -0.05)
    assert np.corrcoef(up[:, 0], truth_a)[0, 1] > 0.9
    assert abs(up[probe["x0"] > 0.5, 0].mean() - 0.15) < 0.04 and abs(up[probe["x0"] < -0.5, 0].mean() + 0.05) < 0.04
    # no effect to find: the cross-validated number of rounds keeps the model near the (zero) mean effect
    assert np.abs(up[:, 1]).max() < 0.03
    # every learner was compared on the validation customers, the DR loss among the logged metrics
    assert {"t_learner_dr_loss", "x_learner_qini", "dr_learner_auuc"} <= set(bundle.metrics["a"])
    with pytest.raises(ValueError, match="learner must be"):
        uplift.fit_bundle(frame, ["x0"], learner="s_learner")


def test_uplift_gate_refuses_a_flipped_treatment_flag_and_promotes_an_equal_retrain(prepared) -> None:
    # broken: a retrained uplift model would start serving without being compared, or a worse one would win
    from training import tracking

    settings = prepared.settings
    env = {"LEADSCOPE_HOME": str(settings.home)}
    champion = tracking.alias_version(settings, "uplift")
    frame = nba.logged(settings)
    client = tracking.configure(settings)
    try:
        # a data bug: treated and control swapped, so every learned effect points the wrong way
        flipped = nba.train(settings, frame=frame.assign(treated=1 - frame["treated"]))
        assert flipped["alias"] == "challenger" and tracking.alias_version(settings, "uplift") == champion
        res = CliRunner().invoke(app, ["promote", "uplift"], env=env)
        assert res.exit_code == 1 and f"champion stays v{champion}" in res.output, res.output
        # the small test company leaves the paired difference noisy (about 2 SE here); one action for everyone
        # beats the flipped model outright
        assert "FAIL  beats the best single action" in res.output
        assert tracking.alias_version(settings, "uplift") == champion
        # the same data again: the same policy, so nothing to lose
        again = nba.train(settings, frame=frame)
        res = CliRunner().invoke(app, ["promote", "uplift"], env=env)
        assert res.exit_code == 0 and f"promoted uplift v{again['version']}" in res.output, res.output
        assert tracking.alias_version(settings, "uplift") == again["version"]
        assert tracking.alias_version(settings, "uplift", "previous") == champion
    finally:
        client.set_registered_model_alias("uplift", tracking.CHAMPION, champion)
        if tracking.alias_version(settings, "uplift", tracking.CHALLENGER):
            client.delete_registered_model_alias("uplift", tracking.CHALLENGER)


def test_a_campaign_log_and_a_catalogue_that_disagree_are_refused(tmp_path) -> None:
    # broken: the default catalogue ignored the log's own actions (every estimate +0.000 ± 0.000) and still
    # registered a champion
    from tests.conftest import prepare, small_settings

    settings = small_settings(tmp_path, customers=800)
    prepare(settings, train=False)
    camp = pd.read_parquet(settings.raw_dir / "campaigns.parquet")
    camp.assign(action_id=camp["action_id"].replace({"sms_coupon": "sms_blast"})).to_parquet(
        settings.raw_dir / "campaigns.parquet", index=False
    )
    res = CliRunner().invoke(app, ["train", "nba"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code == 2, res.output
    assert "the campaign log has 1 action(s) it does not list: sms_blast" in " ".join(res.output.split())
    assert not tracking.has_champion(settings, nba.NAME)
    camp[camp["action_id"] != "sms_coupon"].to_parquet(settings.raw_dir / "campaigns.parquet", index=False)
    res = CliRunner().invoke(app, ["train", "nba"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code == 2 and "1 action(s) never tried in the campaign log: sms_coupon" in " ".join(
        res.output.split()
    )


def test_the_pooled_control_arms_outcome_models_are_fitted_once_and_cross_fitted_out_of_fold() -> None:
    """Every action shares the control arm, so its μ0 halves are fitted once (not once per action), and each
    control row's μ0 comes from the half-model that did not see it (the DR pseudo-outcome needs that)."""
    rng = np.random.default_rng(0)
    n = 6_000
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    folds = rng.integers(0, 2 * uplift.CV_FOLDS, n)
    arm = rng.integers(0, 3, n)  # 0: control, 1 and 2: two actions
    c = arm == 0
    control = uplift.Control(X[c], y[c], folds[c], uplift._fit(uplift.CLASSIFIER, X[c], y[c], [], 1, 0))
    first = uplift.fit_dr(uplift.Arms(X[arm == 1], y[arm == 1], folds[arm == 1], control), [], 1, 0)
    halves, cross = control.cross_fitted([], 1, 0)
    uplift.fit_dr(uplift.Arms(X[arm == 2], y[arm == 2], folds[arm == 2], control), [], 1, 0)
    assert control.cross_fitted([], 1, 0)[0] is halves and len(halves) == 2
    half = folds[c] % 2
    for f in (0, 1):
        alone = uplift._fit(uplift.CLASSIFIER, X[c][half != f], y[c][half != f], [], 1, 0)
        np.testing.assert_allclose(cross[half == f], alone.predict(X[c][half == f]))
    assert first.kind == "dr_learner" and np.isfinite(first.uplift(X)).all()
