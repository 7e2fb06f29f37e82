"""What the iteration reports of a guided run say, derived independently of the code under test."""
import math


def best_reported_iteration(reports) -> int:
    """The iteration whose policy succeeded on the most trained conditions, ties broken by the lowest total
    cost (a diverged rollout, cost NaN, costs infinity), then by the earliest iteration."""
    def score(i):
        r = reports[i]
        cost = sum(c if math.isfinite(c) else math.inf for c in r.policy_cost)
        return sum(r.policy_success), -cost, -i

    return max(range(len(reports)), key=score)
