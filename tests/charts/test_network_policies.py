"""Who may talk to whom, worked out from every NetworkPolicy an environment's namespace holds.

The platform chart denies everything and allows DNS; each workload's chart allows its own paths.
These tests evaluate the policies the way the cluster does (a connection needs an egress rule of
the source and an ingress rule of the destination, once a policy selects the pod) and compare the
result with the call paths of the design.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest
from chart_rendering import WORKLOADS, Manifest, Rendered

pytestmark = pytest.mark.slow

CALLS = {
    ("gateway", "delivery"),
    ("delivery", "package"),
    ("delivery", "scheduler"),
    ("scheduler", "delivery"),
}
INGRESS_CONTROLLER = "app-routing-system"
PRIVATE_ENDPOINT = "10.240.4.5"  # in the example installation's private endpoints subnet
PUBLIC_AZURE = "20.42.0.1"  # an address out on the internet (Azure Monitor, Entra ID)


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int]


def workload_pods(rendered: Rendered) -> dict[str, Pod]:
    pods = {}
    for chart in WORKLOADS:
        template = rendered.one("Deployment", chart)["spec"]["template"]
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        pods[chart] = Pod(chart, rendered.namespace, template["metadata"]["labels"], ports)
    return pods


def policies(rendered: Rendered, *, during_helm_test: bool = False) -> list[Manifest]:
    """The namespace's policies; the smoke tests' own exist only while `helm test` runs."""
    found = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if during_helm_test or "helm.sh/hook" not in p["metadata"].get("annotations", {})
    ]
    for policy in found:
        assert "matchExpressions" not in str(policy), "the evaluation below reads matchLabels only"
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def peer_matches(peer: Manifest, own_namespace: str, other: Pod | str) -> bool:
    if isinstance(other, str):  # an address outside the cluster
        block = peer.get("ipBlock")
        if block is None:
            return False
        return ipaddress.ip_address(other) in ipaddress.ip_network(block["cidr"])
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != own_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def port_matches(rule: Manifest, port: int, target: Pod | None) -> bool:
    if "ports" not in rule:
        return True
    for allowed_port in rule["ports"]:
        number = allowed_port["port"]
        if isinstance(number, str):  # a named port of the destination pod
            number = target.ports.get(number) if target else None
        if number == port:
            return True
    return False


def allowed(
    direction: str, pod: Pod, other: Pod | str, port: int, in_force: list[Manifest]
) -> bool:
    """Whether the policies in force let traffic into / out of `pod` from / to `other`."""
    kind, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    applying = [
        p
        for p in in_force
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not applying:
        return True  # a pod no policy selects is not isolated
    target = pod if direction == "Ingress" else (other if isinstance(other, Pod) else None)
    return any(
        port_matches(rule, port, target)
        and any(peer_matches(peer, pod.namespace, other) for peer in rule.get(peers, []))
        for policy in applying
        for rule in policy["spec"].get(kind, [])
    )


def connects(source: Pod, destination: Pod, in_force: list[Manifest]) -> bool:
    port = destination.ports["http"]
    return allowed("Egress", source, destination, port, in_force) and allowed(
        "Ingress", destination, source, port, in_force
    )


def test_the_namespace_denies_by_default(rendered: Rendered) -> None:
    deny = rendered.one("NetworkPolicy", "shipping-platform", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    in_force = policies(rendered)
    stranger = Pod("stranger", rendered.namespace, {"app.kubernetes.io/name": "stranger"}, {})
    for pod in workload_pods(rendered).values():
        assert not connects(stranger, pod, in_force), f"an unknown pod reaches {pod.name}"
        assert not allowed("Egress", stranger, PUBLIC_AZURE, 443, in_force)


def test_only_the_designed_call_paths_connect(rendered: Rendered) -> None:
    pods = workload_pods(rendered)
    in_force = policies(rendered)
    paths = {
        (source, destination)
        for source in pods
        for destination in pods
        if source != destination and connects(pods[source], pods[destination], in_force)
    }
    assert paths == CALLS


def test_from_outside_only_the_ingress_controller_reaches_the_gateway(rendered: Rendered) -> None:
    pods = workload_pods(rendered)
    in_force = policies(rendered)
    controller = Pod("nginx", INGRESS_CONTROLLER, {"app": "nginx"}, {})
    elsewhere = Pod("intruder", "default", {"app.kubernetes.io/name": "delivery"}, {})
    for name, pod in pods.items():
        reaches = allowed("Ingress", pod, controller, 8080, in_force)
        assert reaches is (name == "gateway"), name
        assert not allowed("Ingress", pod, elsewhere, 8080, in_force), name


def test_every_pod_may_resolve_names(rendered: Rendered) -> None:
    in_force = policies(rendered)
    dns = Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": 53})
    for name, pod in workload_pods(rendered).items():
        assert allowed("Egress", pod, dns, 53, in_force), name


def test_each_service_reaches_its_own_store_and_azure_monitor_only(rendered: Rendered) -> None:
    pods = workload_pods(rendered)
    in_force = policies(rendered)
    stores = {"package": 1433, "delivery": 443, "scheduler": 443}
    for name, port in stores.items():
        assert allowed("Egress", pods[name], PRIVATE_ENDPOINT, port, in_force), name
        assert allowed("Egress", pods[name], PUBLIC_AZURE, 443, in_force), name
    assert not allowed("Egress", pods["delivery"], PRIVATE_ENDPOINT, 1433, in_force)
    assert not allowed("Egress", pods["package"], PUBLIC_AZURE, 1433, in_force)
    # The gateway calls nothing outside the cluster.
    assert not allowed("Egress", pods["gateway"], PUBLIC_AZURE, 443, in_force)


def test_helm_test_pods_reach_only_their_own_workload(rendered: Rendered) -> None:
    pods = workload_pods(rendered)
    in_force = policies(rendered, during_helm_test=True)
    for chart in WORKLOADS:
        metadata = rendered.one("Pod", chart)["metadata"]
        tester = Pod(metadata["name"], rendered.namespace, metadata["labels"], {})
        for name, pod in pods.items():
            assert connects(tester, pod, in_force) is (name == chart), (chart, name)
