"""The fake Docker engine lives in `demo/docker_engine.py`, where the demo world runs it too;
tests import it from here as before."""

from demo.docker_engine import API, FakeContainer, FakeDockerEngine

__all__ = ["API", "FakeContainer", "FakeDockerEngine"]
