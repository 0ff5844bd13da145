{{/*
The workload's own ServiceAccount. With workload identity, it is federated with the workload's
user-assigned managed identity (docs/deploy-aks.md), whose client ID the annotation names.
*/}}
{{- define "common.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
    {{- if .Values.workloadIdentity.enabled }}
    azure.workload.identity/use: "true"
    {{- end }}
  {{- if .Values.workloadIdentity.enabled }}
  annotations:
    azure.workload.identity/client-id: {{ required "workloadIdentity.clientId is required: the client ID of the workload's managed identity" .Values.workloadIdentity.clientId | quote }}
    azure.workload.identity/tenant-id: {{ required "azure.tenantId is required" .Values.azure.tenantId | quote }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
