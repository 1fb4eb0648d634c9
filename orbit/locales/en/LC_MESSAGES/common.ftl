# Shared words and generic answers.
error-generic = Something went wrong on our side. Please try again in a minute.
error-stale-button = This button is out of date. Open the menu again: /menu
