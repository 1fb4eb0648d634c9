admin-health-unknown = ❔ Health unknown: supervisord could not be read
