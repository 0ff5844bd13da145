"""The shipping namespace of each environment: admission, quota, limits and who may do what."""

from __future__ import annotations

import pytest
from chart_rendering import WORKLOADS, Rendered, quantity

pytestmark = pytest.mark.slow


def test_the_namespace_admits_only_restricted_pods(rendered: Rendered) -> None:
    namespace = rendered.one("Namespace", "shipping-platform")
    assert namespace["metadata"]["name"] == rendered.namespace
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    for manifest in rendered.by_chart["shipping-platform"]:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == rendered.namespace


def test_the_quota_fits_every_workload_at_its_maximum_during_a_rollout(rendered: Rendered) -> None:
    """Each workload at its autoscaler's maximum plus its rollout's extra pod, and the test pods."""
    hard = rendered.one("ResourceQuota", "shipping-platform")["spec"]["hard"]
    needed = {"requests.cpu": 0.0, "requests.memory": 0.0, "limits.cpu": 0.0, "limits.memory": 0.0}
    pods = 0
    for chart in WORKLOADS:
        deployment = rendered.one("Deployment", chart)
        most = rendered.one("HorizontalPodAutoscaler", chart)["spec"]["maxReplicas"]
        most += deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        pod_specs = [(most, deployment["spec"]["template"]["spec"])]
        pod_specs.append((1, rendered.one("Pod", chart)["spec"]))
        for count, spec in pod_specs:
            pods += count
            for container in spec["containers"]:
                for kind in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        amount = quantity(container["resources"][kind][resource])
                        needed[f"{kind}.{resource}"] += count * amount
    for key, amount in needed.items():
        assert amount <= quantity(hard[key]), (
            f"{rendered.environment}: {key} {amount} > {hard[key]}"
        )
    assert pods <= int(hard["pods"])
    assert hard["persistentvolumeclaims"] == "0", "the services keep no state in the cluster"


def test_no_container_is_beyond_the_limit_range(rendered: Rendered) -> None:
    (limits,) = rendered.one("LimitRange", "shipping-platform")["spec"]["limits"]
    assert limits["type"] == "Container"
    for chart in WORKLOADS:
        specs = [rendered.one("Deployment", chart)["spec"]["template"]["spec"]]
        specs.append(rendered.one("Pod", chart)["spec"])
        for spec in specs:
            for container in spec["containers"]:
                for resource, most in limits["max"].items():
                    assert quantity(container["resources"]["limits"][resource]) <= quantity(most)


def test_access_is_namespaced_and_least_privilege(rendered: Rendered) -> None:
    kinds = {m["kind"] for m in rendered.all()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide for the app"
    roles = {r["metadata"]["name"]: r for r in rendered.of_kind("Role")}
    assert set(roles) == {"shipping-deployer", "shipping-reader"}
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    reader = roles["shipping-reader"]["rules"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in reader)
    assert not any("secrets" in rule["resources"] for rule in reader)
    bindings = rendered.of_kind("RoleBinding")
    assert {b["roleRef"]["name"] for b in bindings} == set(roles)
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"], binding["metadata"]["name"]
        assert all(s["kind"] in ("Group", "User") for s in binding["subjects"])
    # The workloads' own accounts are bound to nothing: they never call the Kubernetes API.
    accounts = {a["metadata"]["name"] for a in rendered.of_kind("ServiceAccount")}
    subjects = {s["name"] for b in bindings for s in b["subjects"]}
    assert not accounts & subjects


def test_the_deployer_can_install_every_kind_the_service_charts_render(rendered: Rendered) -> None:
    rules = rendered.one("Role", "shipping-platform", "shipping-deployer")["rules"]
    writable = {
        resource
        for rule in rules
        if {"create", "update", "patch", "delete"} <= set(rule["verbs"])
        for resource in rule["resources"]
    }
    rendered_kinds = {m["kind"] for chart in WORKLOADS for m in rendered.by_chart[chart]}
    plural = {
        "Deployment": "deployments",
        "Service": "services",
        "ServiceAccount": "serviceaccounts",
        "HorizontalPodAutoscaler": "horizontalpodautoscalers",
        "PodDisruptionBudget": "poddisruptionbudgets",
        "NetworkPolicy": "networkpolicies",
        "SecretProviderClass": "secretproviderclasses",
        "Ingress": "ingresses",
        "Pod": "pods",
    }
    assert rendered_kinds <= set(plural)
    assert {plural[kind] for kind in rendered_kinds} | {"secrets"} <= writable
