{{/*
The Key Vault secrets the workload reads, mounted by the Secrets Store CSI driver as files in
SECRETS_DIR. Each file is named like the setting it provides (objectAlias), because Key Vault
names allow only letters, digits and dashes. The driver authenticates as the workload's identity.
*/}}
{{- define "common.secretProviderClass" -}}
{{- if include "common.usesKeyVault" . -}}
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    clientID: {{ required "workloadIdentity.clientId is required: the client ID of the workload's managed identity" .Values.workloadIdentity.clientId | quote }}
    tenantId: {{ required "azure.tenantId is required" .Values.azure.tenantId | quote }}
    keyvaultName: {{ required "keyVault.name is required" .Values.keyVault.name | quote }}
    objects: |
      array:
      {{- range $alias, $secret := .Values.keyVault.secrets }}
        - |
          objectName: {{ $secret }}
          objectType: secret
          objectAlias: {{ $alias }}
      {{- end }}
{{- end -}}
{{- end -}}
