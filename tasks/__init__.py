"""The Celery side: the pipeline, evidence bundles, the PagerDuty client and the CLI.

`celery -A tasks worker` finds the app in `tasks.celery`.
"""
