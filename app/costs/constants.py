"""Names the cost reports and advice share."""

PERIODS = ("day", "week", "month")
GROUPS = ("team", "project", "priority", "status")
QUALITY_METRIC = "eval/ppo_vs_best_heuristic_wait_ratio"
REWARD_METRIC = "charts/episodic_return"
