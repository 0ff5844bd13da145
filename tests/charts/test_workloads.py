"""Every workload, in every environment, as the charts render it: what the cluster will run."""

from __future__ import annotations

from typing import Any

import pytest
from chart_rendering import (
    SERVICES,
    WORKLOADS,
    Manifest,
    Rendered,
    installation,
    quantity,
    values,
)

pytestmark = pytest.mark.slow

SECRETS_DIR = "/mnt/secrets-store"
# What each service's settings must say in the cluster, beyond its log level and drain time.
EXPECTED_ENV = {
    "delivery": {
        "DELIVERY_PACKAGE_SERVICE_URL": "http://package:8080",
        "DELIVERY_SCHEDULER_SERVICE_URL": "http://scheduler:8080",
    },
    "package": {},
    "scheduler": {"SCHEDULER_DELIVERY_SERVICE_URL": "http://delivery:8080"},
    "gateway": {
        "GATEWAY_LISTEN_PORT": "8080",
        "DELIVERY_UPSTREAM": "delivery:8080",
        "GATEWAY_RUNTIME_DIR": "/tmp/nginx",
    },
}
# The secrets each service reads from Key Vault, by the setting they provide.
EXPECTED_SECRETS = {
    "delivery": {"APPLICATIONINSIGHTS_CONNECTION_STRING"},
    "package": {"PACKAGE_STORE_URL", "APPLICATIONINSIGHTS_CONNECTION_STRING"},
    "scheduler": {"APPLICATIONINSIGHTS_CONNECTION_STRING"},
    "gateway": set(),
}
SECRET_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "PACKAGE_STORE_URL"}
RESTRICTED_VOLUME_TYPES = {"emptyDir", "csi", "configMap", "secret", "projected", "downwardAPI"}


def pod_specs(rendered: Rendered) -> list[tuple[str, Manifest]]:
    """Every pod the charts can start: the Deployments' templates and the helm test Pods."""
    specs = [
        (f"{chart}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for chart in WORKLOADS
        for d in rendered.of_kind("Deployment", chart)
    ]
    specs += [
        (f"{chart}/{p['metadata']['name']}", p["spec"])
        for chart in WORKLOADS
        for p in rendered.of_kind("Pod", chart)
    ]
    return specs


def container(rendered: Rendered, chart: str) -> Manifest:
    containers = rendered.one("Deployment", chart)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: Manifest = containers[0]
    return found


def env_of(rendered: Rendered, chart: str) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in container(rendered, chart)["env"]
    }


def test_every_pod_meets_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    specs = pod_specs(rendered)
    assert len(specs) == 2 * len(WORKLOADS), "a Deployment and a smoke test Pod per workload"
    for where, spec in specs:
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, where
        assert pod_context["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, (where, volume)
        for each in spec["containers"]:
            context = each["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert isinstance(context["runAsUser"], int), where
            assert context["runAsUser"] >= 10000, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["privileged"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            assert not any(p.get("hostPort") for p in each.get("ports", [])), where


def test_every_container_has_requests_and_limits_within_them(rendered: Rendered) -> None:
    for where, spec in pod_specs(rendered):
        for each in spec["containers"]:
            resources = each["resources"]
            for resource in ("cpu", "memory"):
                request = quantity(resources["requests"][resource])
                limit = quantity(resources["limits"][resource])
                assert 0 < request <= limit, (where, resource)


@pytest.mark.parametrize("chart", WORKLOADS)
def test_probes_ask_the_process_only_after_an_initial_delay(rendered: Rendered, chart: str) -> None:
    main = container(rendered, chart)
    readiness, liveness = main["readinessProbe"], main["livenessProbe"]
    if chart == "gateway":  # nginx answers /healthz itself
        assert readiness["httpGet"]["path"] == liveness["httpGet"]["path"] == "/healthz"
    else:
        assert readiness["httpGet"]["path"] == "/readyz"
        assert liveness["httpGet"]["path"] == "/livez"
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in (readiness, liveness):
        assert probe["httpGet"]["port"] == "http"
        assert probe["initialDelaySeconds"] > 0
        assert probe["timeoutSeconds"] < probe["periodSeconds"]
    # A pod stops getting traffic well before it would be restarted.
    assert liveness["initialDelaySeconds"] >= readiness["initialDelaySeconds"]


@pytest.mark.parametrize("chart", WORKLOADS)
def test_autoscaled_on_cpu_and_evictions_leave_a_pod_serving(
    rendered: Rendered, chart: str
) -> None:
    deployment = rendered.one("Deployment", chart)
    hpa = rendered.one("HorizontalPodAutoscaler", chart)
    pdb = rendered.one("PodDisruptionBudget", chart)
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert 2 <= low <= high
    # A drain may evict a pod (minAvailable below the minimum) and never the last one.
    assert 1 <= pdb["spec"]["minAvailable"] < low
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    rollout = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0


@pytest.mark.parametrize("chart", WORKLOADS)
def test_the_service_sends_to_the_workloads_http_port(rendered: Rendered, chart: str) -> None:
    service = rendered.one("Service", chart)
    deployment = rendered.one("Deployment", chart)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["metadata"]["name"] == chart, "services find each other by chart name"
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["ports"][0]["port"] == 8080


@pytest.mark.parametrize("chart", WORKLOADS)
def test_images_come_from_the_private_registry_by_digest(rendered: Rendered, chart: str) -> None:
    image = installation(chart)["image"]
    expected = f"{image['registry']}/shipping/{chart}:0.1.0@{image['digest']}"
    pods = [
        rendered.one("Deployment", chart)["spec"]["template"]["spec"],
        rendered.one("Pod", chart)["spec"],
    ]
    for spec in pods:
        assert spec["containers"][0]["image"] == expected
        assert spec["containers"][0]["imagePullPolicy"] in ("IfNotPresent", "Always")


@pytest.mark.parametrize("chart", WORKLOADS)
def test_settings_per_service(rendered: Rendered, chart: str) -> None:
    env = env_of(rendered, chart)
    assert env.items() >= EXPECTED_ENV[chart].items()
    assert env["K8S_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert not SECRET_SETTINGS & set(env), "secrets are files, never environment variables"
    if chart == "gateway":
        return
    prefix = chart.upper() + "_"
    assert env[f"{prefix}ENVIRONMENT"] == rendered.environment
    assert env[f"{prefix}LOG_LEVEL"] in ("DEBUG", "INFO")
    if chart != "package":  # the package service's store URL is a secret
        assert env[f"{prefix}STORE_URL"].startswith("cosmos://")
        assert env[f"{prefix}STORE_URL"].endswith(f".documents.azure.com:443/{chart}")
    assert not any(name.endswith("COSMOS_KEY") for name in env), "Entra ID, not keys"
    # The pod keeps serving while it drains, and is not killed before it has finished.
    drain = float(env[f"{prefix}DRAIN_SECONDS"])
    grace = rendered.one("Deployment", chart)["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert 0 < drain < grace


def test_the_flight_simulation_runs_in_real_time_in_production(renderings: Any) -> None:
    env = env_of(renderings["prod"], "scheduler")
    assert env["SCHEDULER_SIM_SPEEDUP"] == "1"
    assert int(env["SCHEDULER_FLEET_SIZE"]) > int(
        env_of(renderings["dev"], "scheduler")["SCHEDULER_FLEET_SIZE"]
    )


@pytest.mark.parametrize("chart", WORKLOADS)
def test_secrets_are_mounted_from_key_vault_as_files(rendered: Rendered, chart: str) -> None:
    spec = rendered.one("Deployment", chart)["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    classes = rendered.of_kind("SecretProviderClass", chart)
    if not EXPECTED_SECRETS[chart]:
        assert not classes
        assert "secrets-store" not in volumes
        return
    (provider,) = classes
    csi = volumes["secrets-store"]["csi"]
    assert csi["driver"] == "secrets-store.csi.k8s.io"
    assert csi["readOnly"] is True
    assert csi["volumeAttributes"]["secretProviderClass"] == provider["metadata"]["name"]
    assert mounts["secrets-store"] == {
        "name": "secrets-store",
        "mountPath": SECRETS_DIR,
        "readOnly": True,
    }
    assert env_of(rendered, chart)["SECRETS_DIR"] == SECRETS_DIR

    # The custom resource has no schema to validate against: its shape is checked here. The CRD
    # takes only strings as parameters.
    parameters = provider["spec"]["parameters"]
    assert provider["spec"]["provider"] == "azure"
    assert all(isinstance(v, str) for v in parameters.values()), parameters
    assert parameters["usePodIdentity"] == "false"
    assert parameters["keyvaultName"] == installation(chart)["keyVault"]["name"]
    objects = yaml_objects(parameters["objects"])
    assert {o["objectAlias"] for o in objects} == EXPECTED_SECRETS[chart]
    assert all(o["objectType"] == "secret" for o in objects)
    assert all(o["objectName"].replace("-", "").isalnum() for o in objects), "Key Vault names"


@pytest.mark.parametrize("chart", WORKLOADS)
def test_workload_identity_is_the_services_own(rendered: Rendered, chart: str) -> None:
    account = rendered.one("ServiceAccount", chart)
    pod = rendered.one("Deployment", chart)["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    uses_identity = chart in SERVICES
    assert (pod["metadata"]["labels"].get("azure.workload.identity/use") == "true") is uses_identity
    annotations = account["metadata"].get("annotations", {})
    if not uses_identity:
        assert not annotations
        return
    client_id = installation(chart)["workloadIdentity"]["clientId"]
    assert annotations["azure.workload.identity/client-id"] == client_id
    provider = rendered.one("SecretProviderClass", chart)
    assert provider["spec"]["parameters"]["clientID"] == client_id


def test_the_gateway_is_the_public_entry_over_tls(rendered: Rendered) -> None:
    hpa = rendered.one("HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["minReplicas"] >= 2
    assert rendered.one("Service", "gateway")["spec"]["type"] == "ClusterIP"
    ingress = rendered.one("Ingress", "gateway")
    host = installation("gateway")["ingress"]["host"]
    assert ingress["spec"]["ingressClassName"] == "webapprouting.kubernetes.azure.com"
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "keyvault-gateway"}]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.azure.com/tls-cert-keyvault-uri"].startswith("https://")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gateway", "port": {"name": "http"}}
    # nginx finishes the requests in flight on SIGQUIT before Kubernetes' SIGTERM stops it.
    pre_stop = container(rendered, "gateway")["lifecycle"]["preStop"]["exec"]["command"]
    assert "kill -QUIT 1" in pre_stop[-1]
    assert set(env_of(rendered, "gateway")) >= set(values("gateway", rendered.environment)["env"])


def test_the_smoke_tests_ask_each_service_whether_it_is_ready(rendered: Rendered) -> None:
    for chart in WORKLOADS:
        pod = rendered.one("Pod", chart)
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["restartPolicy"] == "Never"
        path = "/healthz" if chart == "gateway" else "/readyz"
        assert pod["spec"]["containers"][0]["command"][-1] == f"http://{chart}:8080{path}"
        # It is not one of the workload's pods: the Deployment must not adopt it.
        selector = rendered.one("Deployment", chart)["spec"]["selector"]["matchLabels"]
        assert not selector.items() <= pod["metadata"]["labels"].items()


def test_every_resource_is_namespaced_and_labelled(rendered: Rendered) -> None:
    for chart in WORKLOADS:
        for manifest in rendered.by_chart[chart]:
            metadata = manifest["metadata"]
            assert metadata["namespace"] == rendered.namespace, (chart, manifest["kind"])
            assert metadata["labels"]["app.kubernetes.io/part-of"] == "drone-delivery"
            assert metadata["labels"]["drone-delivery/environment"] == rendered.environment


def yaml_objects(text: str) -> list[Manifest]:
    import yaml

    documents = yaml.safe_load(text)["array"]
    return [yaml.safe_load(document) for document in documents]
