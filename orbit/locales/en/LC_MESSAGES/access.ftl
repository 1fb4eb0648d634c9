# Access and abuse: where the bot talks, and what one user may make it do (docs/reliability/access.md).
private-only = I only work in a private chat: open me from my profile and press Start.
