# The answer to a message nothing understood (free text outside a flow, an unknown command).
hint-menu = I did not understand that. Open the menu: /menu
