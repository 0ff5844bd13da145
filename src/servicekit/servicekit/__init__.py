"""servicekit: what every Drone Delivery service shares, wired by one call (`create_service_app`)."""

from servicekit.app import create_service_app
from servicekit.clients import CallPolicy, DownstreamUnavailableError, ServiceClient
from servicekit.problems import Problem, problem_responses
from servicekit.settings import ServiceSettings

__all__ = [
    "CallPolicy",
    "DownstreamUnavailableError",
    "Problem",
    "ServiceClient",
    "ServiceSettings",
    "create_service_app",
    "problem_responses",
]
