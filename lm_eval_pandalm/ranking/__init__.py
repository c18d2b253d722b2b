"""Tournaments and leaderboards: compare N candidates pairwise, rank them with Bradley-Terry and intervals."""
