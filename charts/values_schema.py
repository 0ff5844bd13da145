"""Writes each chart's values.schema.json: `uv run python charts/values_schema.py`.

The workload charts share most of their values, so their schemas are built here from one
description plus what each chart adds; tests/charts checks that the committed files are current.
Helm validates the values against the schema on lint, template, install and upgrade, so a
missing installation fact or a mistyped environment stops there, with the field's name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CHARTS = Path(__file__).resolve().parent
Schema = dict[str, Any]

GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CIDR = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$"
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
SETTING = r"^[A-Z][A-Z0-9_]*$"
ENVIRONMENTS = ["dev", "qa", "staging", "prod"]


def string(pattern: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if pattern:
        schema["pattern"] = pattern
    return schema


def integer(minimum: int, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, **extra}


def strict(properties: Schema, required: list[str] | None = None, **extra: Any) -> Schema:
    """An object with exactly these properties: a misspelt key is an error, not a silent no-op."""
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    schema["required"] = sorted(properties) if required is None else required
    return {**schema, **extra}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def quantities(cpu: Schema, memory: Schema) -> Schema:
    return strict({"cpu": cpu, "memory": memory})


CPU = {"type": ["string", "integer", "number"], "pattern": r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"}
MEMORY = string(r"^[0-9]+(Ki|Mi|Gi)$")
PROBE = strict(
    {
        "path": string("^/"),
        "initialDelaySeconds": integer(1),
        "periodSeconds": integer(1),
        "timeoutSeconds": integer(1),
        "failureThreshold": integer(1),
    }
)


def workload(
    name: str,
    *,
    prefix: str,
    component: str,
    env: Schema,
    required_env: list[str],
    required_secrets: list[str],
    extra: Schema | None = None,
) -> Schema:
    env_schema: Schema = {
        "type": "object",
        "description": "Settings that are not secrets, by variable name.",
        "propertyNames": {"pattern": SETTING},
        "additionalProperties": string(),
        "properties": env,
        "required": required_env,
    }
    if prefix:
        env_schema["not"] = {
            "required": [f"{prefix}ENVIRONMENT"],
            "description": "set by `environment`",
        }
    properties: Schema = {
        "global": {"type": "object"},
        "common": {"type": "object"},
        "nameOverride": string(DNS_LABEL),
        "environment": {"enum": ENVIRONMENTS, "description": "The environment this release is"},
        "settingsPrefix": {"const": prefix},
        "component": {"const": component},
        "image": strict(
            {
                "registry": string(r"^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?$"),
                "repository": string(r"^[a-z0-9]+([._/-][a-z0-9]+)*$"),
                "tag": string(r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"),
                "digest": string(r"^sha256:[0-9a-f]{64}$"),
                "pullPolicy": {"enum": ["IfNotPresent", "Always"]},
            }
        ),
        "azure": strict({"tenantId": string()}),
        "workloadIdentity": strict({"enabled": {"type": "boolean"}, "clientId": string()}),
        "keyVault": strict(
            {
                "name": string(),
                "secrets": {
                    "type": "object",
                    "description": "The file in SECRETS_DIR (the setting) -> the Key Vault secret",
                    "propertyNames": {"pattern": SETTING},
                    "additionalProperties": string(r"^[0-9a-zA-Z-]{1,127}$"),
                    "required": required_secrets,
                },
            }
        ),
        "env": env_schema,
        "service": strict(
            {
                "type": {"enum": ["ClusterIP", "LoadBalancer"]},
                "port": {"const": 8080},
                "annotations": {"type": "object", "additionalProperties": string()},
            }
        ),
        "resources": strict(
            {"requests": quantities(CPU, MEMORY), "limits": quantities(CPU, MEMORY)}
        ),
        "autoscaling": strict(
            {
                "minReplicas": integer(2, description="Two at least, so a drain leaves one"),
                "maxReplicas": integer(2),
                "targetCPUUtilizationPercentage": integer(10, maximum=100),
            }
        ),
        "podDisruptionBudget": strict({"minAvailable": integer(1)}),
        "probes": strict({"readiness": PROBE, "liveness": PROBE}),
        "terminationGracePeriodSeconds": integer(1),
        "lifecycle": {"type": "object"},
        "tmpSizeLimit": MEMORY,
        "networkPolicy": strict(
            {
                "callers": array(string(DNS_LABEL), uniqueItems=True),
                "callerNamespaces": array(string(DNS_LABEL), uniqueItems=True),
                "callerCidrs": array(string(CIDR), uniqueItems=True),
                "calls": array(string(DNS_LABEL), uniqueItems=True),
                "egress": {
                    "type": "object",
                    "description": "Destinations outside the cluster, by purpose",
                    "additionalProperties": strict(
                        {
                            "cidrs": array(string(CIDR), minItems=1, uniqueItems=True),
                            "ports": array(integer(1, maximum=65535), minItems=1),
                        }
                    ),
                },
            }
        ),
        "smokeTest": strict({"path": string("^/"), "command": array(string(), minItems=1)}),
        **(extra or {}),
    }
    required = sorted(set(properties) - {"global", "common", "nameOverride"})
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"Values of the {name} chart",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": required,
        "allOf": [
            {
                "description": "An identity needs the tenant and its client ID",
                "if": {
                    "properties": {"workloadIdentity": {"properties": {"enabled": {"const": True}}}}
                },
                "then": {
                    "properties": {
                        "azure": {"properties": {"tenantId": string(GUID)}},
                        "workloadIdentity": {"properties": {"clientId": string(GUID)}},
                    }
                },
            },
            {
                "description": "Secrets need the Key Vault's name and an identity to read them",
                "if": {
                    "properties": {"keyVault": {"properties": {"secrets": {"minProperties": 1}}}}
                },
                "then": {
                    "properties": {
                        "keyVault": {
                            "properties": {
                                "name": string(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
                            }
                        },
                        "workloadIdentity": {"properties": {"enabled": {"const": True}}},
                    }
                },
            },
        ],
    }


def service_url(name: str) -> Schema:
    return string(f"^http://{name}:8080$")


COSMOS_URL = string(r"^cosmos://[a-z0-9-]+\.documents\.azure\.com:443/[A-Za-z0-9_-]+$")
NUMBER = string(r"^[0-9]+(\.[0-9]+)?$")
LOG_LEVEL = {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]}


def common_env(prefix: str) -> Schema:
    return {f"{prefix}LOG_LEVEL": LOG_LEVEL, f"{prefix}DRAIN_SECONDS": NUMBER}


def schemas() -> dict[str, Schema]:
    return {
        "delivery": workload(
            "delivery",
            prefix="DELIVERY_",
            component="service",
            env={
                **common_env("DELIVERY_"),
                "DELIVERY_STORE_URL": COSMOS_URL,
                "DELIVERY_PACKAGE_SERVICE_URL": service_url("package"),
                "DELIVERY_SCHEDULER_SERVICE_URL": service_url("scheduler"),
            },
            required_env=[
                "DELIVERY_STORE_URL",
                "DELIVERY_PACKAGE_SERVICE_URL",
                "DELIVERY_SCHEDULER_SERVICE_URL",
                "DELIVERY_DRAIN_SECONDS",
            ],
            required_secrets=["APPLICATIONINSIGHTS_CONNECTION_STRING"],
        ),
        "package": workload(
            "package",
            prefix="PACKAGE_",
            component="service",
            env={
                **common_env("PACKAGE_"),
                "PACKAGE_STORE_URL": {"not": {}, "description": "a secret: keyVault.secrets"},
            },
            required_env=["PACKAGE_DRAIN_SECONDS"],
            required_secrets=["PACKAGE_STORE_URL", "APPLICATIONINSIGHTS_CONNECTION_STRING"],
        ),
        "scheduler": workload(
            "scheduler",
            prefix="SCHEDULER_",
            component="service",
            env={
                **common_env("SCHEDULER_"),
                "SCHEDULER_STORE_URL": COSMOS_URL,
                "SCHEDULER_DELIVERY_SERVICE_URL": service_url("delivery"),
                "SCHEDULER_SIM_SPEEDUP": NUMBER,
                "SCHEDULER_FLEET_SIZE": string(r"^[1-9][0-9]*$"),
            },
            required_env=[
                "SCHEDULER_STORE_URL",
                "SCHEDULER_DELIVERY_SERVICE_URL",
                "SCHEDULER_DRAIN_SECONDS",
            ],
            required_secrets=["APPLICATIONINSIGHTS_CONNECTION_STRING"],
        ),
        "gateway": workload(
            "gateway",
            prefix="",
            component="gateway",
            env={
                "GATEWAY_LISTEN_PORT": {"const": "8080"},
                "DELIVERY_UPSTREAM": string("^delivery:8080$"),
                "GATEWAY_RUNTIME_DIR": string("^/tmp/"),
                "GATEWAY_MAX_BODY_SIZE": string("^[0-9]+[kKmM]?$"),
                "GATEWAY_RATE_LIMIT": string("^[0-9]+r/[sm]$"),
                "GATEWAY_RATE_BURST": string("^[0-9]+$"),
                "GATEWAY_TRUSTED_PROXIES": string(CIDR),
            },
            required_env=[
                "GATEWAY_LISTEN_PORT",
                "DELIVERY_UPSTREAM",
                "GATEWAY_RUNTIME_DIR",
                "GATEWAY_MAX_BODY_SIZE",
                "GATEWAY_RATE_LIMIT",
                "GATEWAY_RATE_BURST",
                "GATEWAY_TRUSTED_PROXIES",
            ],
            required_secrets=[],
            extra={"ingress": INGRESS},
        ),
        "shipping-platform": PLATFORM,
    }


INGRESS = strict(
    {
        "enabled": {"type": "boolean"},
        "className": string(minLength=1),
        "host": string(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$"),
        "annotations": {"type": "object", "additionalProperties": string()},
        "tls": strict(
            {
                "keyVaultCertificateUri": string(
                    r"^(https://[a-z0-9-]+\.vault\.azure\.net/certificates/[A-Za-z0-9-]+(/[0-9a-f]+)?)?$"
                ),
                "secretName": string(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"),
            }
        ),
    }
)

SUBJECT = strict({"kind": {"enum": ["Group", "User"]}, "name": string(GUID)})
PLATFORM: Schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Values of the shipping-platform chart",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": {"type": "object"},
        "environment": {"enum": ENVIRONMENTS},
        "podSecurity": strict({"version": string(r"^(v1\.[0-9]+|latest)$")}),
        "resourceQuota": {
            "type": "object",
            "additionalProperties": string(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi)?$"),
            "required": ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods"],
        },
        "limitRange": strict(
            {
                "defaultRequest": quantities(CPU, MEMORY),
                "default": quantities(CPU, MEMORY),
                "max": quantities(CPU, MEMORY),
            }
        ),
        "rbac": strict({"deployers": array(SUBJECT), "readers": array(SUBJECT)}),
        "dns": strict(
            {
                "namespace": string(DNS_LABEL),
                "podLabels": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": string(),
                },
            }
        ),
    },
    "required": ["environment", "podSecurity", "resourceQuota", "limitRange", "rbac", "dns"],
}


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2) + "\n"


def main() -> int:
    for chart, schema in schemas().items():
        (CHARTS / chart / "values.schema.json").write_text(render(schema))
    return 0


if __name__ == "__main__":
    sys.exit(main())
