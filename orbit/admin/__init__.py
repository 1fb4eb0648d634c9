"""The operators' side: statistics, user lookup, balance adjustments, bans and
broadcasts. The bot's admin panel and the `orbit` CLI both call these functions."""
