"""Marzban panels: the HTTP client, the instance registry, placement, provisioning, draining.

`client` speaks one panel's API; `queries` + `instances` are the registry;
`placement.choose_instance` reads the balancer's scores (never HTTP);
`provisioning` creates and changes a config's panel user; `drain` empties a panel.
"""
