"""The job domain: models, states and transitions, the submission contract, the queue, planning
and admission, the dispatcher, executors, the lease, the database and its migrations, settings,
tracking, money and errors. It imports no other `app` package (the layer contract in
pyproject.toml checks it); what it needs from above arrives through app.core.ports."""
