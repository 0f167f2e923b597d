"""The demo world: an EAFIX simulator, Prometheus, Alertmanager and a fake PagerDuty.

Test and demo code: the product packages never import it.
"""
