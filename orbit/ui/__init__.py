"""What the bot shows: texts laid out as screens, keyboards and the buttons' data.

Below the processes that send the bot's screens: the bot itself, the janitor (job
progress and reports, reminders' buttons) and the CLI (a broadcast's button)."""
