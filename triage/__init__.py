"""The responder's domain: alert models, the policy, classification and SLA deadlines.

Pure and synchronous: no Flask, no Celery, no network, no clock, no environment.
"""
