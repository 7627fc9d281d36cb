"""Next-best-action against the generator's truth on held-out customers: the true incremental value of our
policy, the oracle policy (true uplift, same eligibility), the best single action, random, rank-by-propensity
and do-nothing; the off-policy estimates (IPS, DR) next to the true value on the same logged rows; and the same
estimates over 500 fresh randomisations of those rows (how far one log's estimate strays, and the estimator's bias).

Usage: python -m benchmarks.nba_quality   (after `make run`, which registers the uplift model)
"""

from __future__ import annotations

import json

from leadscope.settings import Settings, quiet_environment
from training import nba, nba_eval, population, tracking


def main() -> None:
    quiet_environment()
    settings = Settings()
    pop = population.load(settings)
    champion = tracking.load_champion(settings, nba.NAME)
    version, bundle = champion.version, champion.model
    v = nba_eval.evaluate(settings, pop, bundle)
    print(f"uplift v{version}; {v['customers']:,} held-out customers at {pop.as_of}")
    print("true incremental value per customer (uplift × value of a response − cost), same eligibility for all:")
    for name in ("oracle", "ours", "best_single_action", "rank_by_propensity", "random", "do_nothing"):
        extra = f" ({v['best_single_action_is']})" if name == "best_single_action" else ""
        print(f"  {name:<20} {v[name]:>8.3f}{extra}")
    ceiling = nba_eval.feature_ceiling(settings, pop, threads=2)
    print(f"  {'feature ceiling':<20} {ceiling:>8.3f} (true uplift and value learned from these features)")
    print(f"feature ceiling / oracle {ceiling / v['oracle']:.3f}; ours / ceiling {v['ours'] / ceiling:.3f}")
    print(
        f"ours / oracle {v['ours'] / v['oracle']:.3f} (target 0.9); ours / best single action "
        f"{v['ours'] / v['best_single_action']:.2f} (target 1.2); ours contacts {v['share_contacted_ours']:.1%}"
    )
    client = tracking.configure(settings)
    mv = client.get_model_version_by_alias(nba.NAME, tracking.CHAMPION)
    best_single = client.get_run(mv.run_id).data.params["best_single_action"]
    logged = nba.logged(settings)
    ope = nba_eval.ope_against_truth(settings, logged, bundle, best_single)
    print("\noff-policy on the held-out customers' logged rows, incremental value per row vs do-nothing:")
    print(f"  {'policy':<20} {'IPS':>14} {'DR':>14} {'true':>8} {'DR error':>9}")
    for name, o in ope.items():
        err = (o["dr"] - o["true"]) / abs(o["true"]) if o["true"] else float("nan")
        print(
            f"  {name:<20} {o['ips']:>7.3f} ±{o['ips_se']:.3f} {o['dr']:>7.3f} ±{o['dr_se']:.3f} "
            f"{o['true']:>8.3f} {err:>+9.1%}"
        )
    k = 500
    rep = nba_eval.ope_replicates(settings, logged, bundle, best_single, replicates=k)
    print(
        f"\nthe same held-out contacts randomised again {k} times as the log was, outcomes from the true response"
        "\nprobability (one log's luck vs the estimator's bias):"
    )
    print(
        f"  {'policy':<20} {'true':>8} {'mean DR':>8} {'mean IPS':>8} {'1-log SE':>8} {'1-log err sd':>12} "
        f"{'1-log ≤10%':>10} {'pooled DR error':>15}"
    )
    for name, o in rep.items():
        if name == "do_nothing":
            continue
        print(
            f"  {name:<20} {o['true']:>8.3f} {o['dr_mean']:>8.3f} {o['ips_mean']:>8.3f} {o['dr_se_one_log']:>8.3f} "
            f"{o['dr_error_sd_one_log']:>12.1%} {o['share_within_10pct']:>10.0%} {o['dr_error_pooled']:>+15.1%}"
        )
    print(json.dumps({"truth": v, "ope": ope, "replicates": rep}, default=float))


if __name__ == "__main__":
    main()
