"""PPO training on simrs: configuration, policy, algorithm, evaluation and entry point."""
